/*
 * LD_PRELOAD shim for the browser under test: route-netlink sockets fail, so Chromium assumes
 * it is always online instead of watching the host's interfaces.
 *
 * Why: every container Docker starts adds a veth interface on the host. Chromium sees that as a
 * network change and aborts its requests in flight with net::ERR_NETWORK_CHANGED (a stylesheet,
 * an API call), even to 127.0.0.1. The pool starts containers while the tests browse, so
 * without this the tests fail at random. Chromium's address tracker treats a failed netlink
 * socket as "always online"; the same workaround as opsmill/infrahub#9385.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <linux/netlink.h>
#include <stddef.h>
#include <sys/socket.h>

int socket(int domain, int type, int protocol)
{
    static int (*real_socket)(int, int, int);

    if (domain == AF_NETLINK && protocol == NETLINK_ROUTE) {
        errno = EAFNOSUPPORT;
        return -1;
    }
    if (real_socket == NULL)
        real_socket = (int (*)(int, int, int))dlsym(RTLD_NEXT, "socket");
    return real_socket(domain, type, protocol);
}
