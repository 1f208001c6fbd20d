/* SPDX-License-Identifier: MIT */
/* tests/helpers/no_ipv6.c - LD_PRELOAD shim: a host without IPv6, as a container with it
 * disabled is (socket(AF_INET6) fails with EAFNOSUPPORT); everything else passes through. */
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <sys/socket.h>

typedef int socket_fn(int, int, int);

int socket(int domain, int type, int protocol)
{
    static socket_fn *real;
    if (domain == AF_INET6) {
        errno = EAFNOSUPPORT;
        return -1;
    }
    if (real == NULL) {
        void *sym = dlsym(RTLD_NEXT, "socket");
        *(void **)&real = sym; /* POSIX's way from an object pointer to a function's */
    }
    return real(domain, type, protocol);
}
