/* netdev.c — the port-type registry and the helpers types share.  No type
 * lives here: each is its own file (netdev_provider.h). */
#define _GNU_SOURCE
#include "netdev_provider.h"

#include <errno.h>
#include <net/if.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CLASSES 32

/* Filled by constructors while the library loads, read-only afterwards. */
static const struct vs_netdev_class *classes[MAX_CLASSES];
static int n_classes;

void vs_netdev_register(const struct vs_netdev_class *cls)
{
    if (n_classes < MAX_CLASSES && !vs_netdev_lookup(cls->type))
        classes[n_classes++] = cls;
}

const struct vs_netdev_class *vs_netdev_lookup(const char *type)
{
    for (int i = 0; i < n_classes; i++)
        if (!strcmp(classes[i]->type, type))
            return classes[i];
    return NULL;
}

int vs_netdev_types(const char **names, int max)
{
    for (int i = 0; i < n_classes && i < max; i++)
        names[i] = classes[i]->type;
    return n_classes;
}

/* ---- helpers ---- */

int vs_netdev_set_up(const char *ifname)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    int err = 0;
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
        err = -errno;
    } else if (!(ifr.ifr_flags & IFF_UP)) {
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
            err = -errno;
    }
    close(s);
    return err;
}

int vs_netdev_poll_error(int fd, short revents)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (!(revents & (POLLNVAL | POLLHUP)) && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0)
        return 0;
    return 1;
}

int vs_netdev_check_options(const struct vs_port_option *opts, int n_opts,
                            const char *const *allowed, char *err, size_t errlen)
{
    for (int i = 0; i < n_opts; i++) {
        int known = 0;
        for (const char *const *a = allowed; a && *a && !known; a++)
            known = !strcmp(*a, opts[i].key);
        if (!known) {
            snprintf(err, errlen, "option %s", opts[i].key);
            return -EINVAL;
        }
    }
    return 0;
}

const char *vs_netdev_option(const struct vs_port_option *opts, int n_opts, const char *key,
                             const char *dflt)
{
    for (int i = 0; i < n_opts; i++)
        if (!strcmp(opts[i].key, key))
            return opts[i].value;
    return dflt;
}

int vs_netdev_fail(char *err, size_t errlen, const char *step, int error)
{
    snprintf(err, errlen, "%s", step);
    return error;
}

int vs_netdev_kv(struct vs_port_kv *out, int n, int max, const char *key, const char *fmt, ...)
{
    if (n >= max)
        return n;
    snprintf(out[n].key, sizeof out[n].key, "%s", key);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out[n].value, sizeof out[n].value, fmt, ap);
    va_end(ap);
    return n + 1;
}

int vs_netdev_counter(struct vs_port_counter *out, int n, int max, const char *name,
                      uint64_t value)
{
    if (n >= max)
        return n;
    snprintf(out[n].name, sizeof out[n].name, "%s", name);
    out[n].value = value;
    return n + 1;
}
