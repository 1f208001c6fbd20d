/* SPDX-License-Identifier: MIT */
/* broker/main.c - the starling command line (mosquitto's flags). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mq_config.h"

static void usage(FILE *f)
{
    fprintf(f, "starling version %s\n\n"
               "Usage: starling [-c config_file] [-d] [-h] [-p port] [-v]\n\n"
               " -c, --config-file : specify the broker config file.\n"
               " -d, --daemon      : put the broker into the background after starting.\n"
               " -h, --help        : display this help.\n"
               " -p, --port        : start the broker listening on the specified port.\n"
               "                     Not recommended in conjunction with the -c option.\n"
               " -v, --verbose     : verbose mode - enable all logging types.\n",
            MQ_VERSION);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config-file", required_argument, NULL, 'c'},
        {"daemon", no_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {"port", required_argument, NULL, 'p'},
        {"verbose", no_argument, NULL, 'v'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "c:dhp:v", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
        case 'd':
        case 'p':
        case 'v':
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 1;
        }
    }
    fprintf(stderr, "starling %s: the broker engine is not built yet (issue 3); "
                    "this binary only checks its command line and cannot serve clients.\n",
            MQ_VERSION);
    return 1;
}
