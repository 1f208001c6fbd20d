/* SPDX-License-Identifier: MIT */
/* broker/sys.h - the $SYS tree: mosquitto's topics, values, units and cadence. */
#ifndef MQ_BROKER_SYS_H
#define MQ_BROKER_SYS_H

#include <stdint.h>

#include "net/server.h"

typedef struct mq_sys mq_sys_t;

/* Creates the publisher for 'srv'; 'start_s' is the broker's start (CLOCK_MONOTONIC
 * seconds). Main thread only, like every function here. */
mq_sys_t *mq_sys_new(mq_server_t *srv, double start_s);
void mq_sys_free(mq_sys_t *sys);

/* Publishes every topic whose value changed since the last call (uptime always; load
 * averages when they move by 0.01 or more), retained, through the normal routing path.
 * Call every sys_interval seconds; 'now_s' is CLOCK_MONOTONIC seconds. */
void mq_sys_update(mq_sys_t *sys, double now_s);

#endif
