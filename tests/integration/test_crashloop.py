# SPDX-License-Identifier: MIT
"""Crash loop, reduced (issue 11): tests/stress/crashloop.py with 6 kills -9 of a broker under
retained QoS 1/2 load with two persistent subscribers: after each restart every topic holds
the last acknowledged value or a later one sent, and at the end each subscriber has every
acknowledged value (QoS 2 exactly once). The long run (100 kills, 4 subscribers) is by hand:
tests/stress/crashloop.py --broker build/broker/starling."""
import os
import subprocess
import sys

import pytest

from conftest import BROKER, IS_MOSQUITTO, WORKERS

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "stress", "crashloop.py")


@pytest.mark.timeout(120)
# once per test command: the plain build with several workers (the sanitizers' runs check the
# same journal code through test_persistence.py; CI keeps under 30 minutes)
@pytest.mark.skipif(os.environ.get("MQ_SANITIZED") == "1" or WORKERS < 2,
                    reason="runs once, in the plain build with several workers")
@pytest.mark.skipif(IS_MOSQUITTO, reason="Starling's journal (mosquitto loses what came after "
                                         "its last snapshot)")
def test_nothing_acknowledged_is_lost_over_6_kills():
    r = subprocess.run([sys.executable, SCRIPT, "--broker", BROKER, "--kills", "6",
                        "--publishers", "6", "--subscribers", "2", "--workers", str(WORKERS),
                        "--max-run", "1.0"],
                       capture_output=True, text=True, timeout=110)
    assert r.returncode == 0, r.stdout + r.stderr
    assert ", 0 lost;" in r.stdout and "0 acknowledged ones missing, 0 QoS 2 duplicates" in \
        r.stdout, r.stdout
