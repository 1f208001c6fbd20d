/* SPDX-License-Identifier: MIT */
/* bench/relay.h - `starling-bench relay`: a trivial MQTT relay to calibrate the bench. */
#ifndef MQ_BENCH_RELAY_H
#define MQ_BENCH_RELAY_H

#include <stdbool.h>
#include <stdint.h>

/* Serves 127.0.0.1:port until SIGINT/SIGTERM; returns the exit status. */
int sb_relay_main(uint16_t port, bool quiet);

#endif
