# SPDX-License-Identifier: MIT
"""Connection storms, reduced: tests/stress/storm.py with 1,500 connections (half with
keep-alive 1 s and silent), three rounds: every CONNECT answered, no crash, every socket
released, RSS after the third storm within 10 % (+ 4 MiB of allocator warm-up at
this size) of after the first. The full size (19,000)
runs by hand: tests/stress/storm.py --broker build/broker/starling."""
import os
import subprocess
import sys

import pytest

from conftest import BROKER, IS_MOSQUITTO, WORKERS

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "stress", "storm.py")


@pytest.mark.timeout(150)
@pytest.mark.skipif(IS_MOSQUITTO, reason="Starling's workers option")
def test_three_storms_of_1500_connections():
    r = subprocess.run([sys.executable, SCRIPT, "--broker", BROKER, "--conns", "1500",
                        "--rounds", "3", "--workers", str(WORKERS),
                        # a small storm does not warm every worker's allocator in one round
                        "--rss-slack-kib", "4096"],
                       capture_output=True, text=True, timeout=140)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("1500 accepted") == 3, r.stdout
