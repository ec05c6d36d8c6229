/* The network verdict shared by the LSM socket hooks: where a managed task's
 * AF_INET/AF_INET6 traffic may go. */
#ifndef LILITH_NETPOLICY_H
#define LILITH_NETPOLICY_H

#include "common.h"

struct dest {
	__u8 addr[16]; /* IPv4 as ::ffff:a.b.c.d */
	__u16 port;    /* host byte order */
	__u16 family;
};

/* Parse a kernel copy of a sockaddr (the kernel passes a sockaddr_storage,
 * so reading sizeof(sockaddr_in6) stays inside it). */
static __always_inline bool read_dest(const void *sa, int len, struct dest *d)
{
	struct sockaddr_in6 s6 = {};
	struct sockaddr_in s4;

	if (!sa || bpf_probe_read_kernel(&s6, sizeof(s6), sa))
		return false;
	d->family = s6.sin6_family;
	if (d->family == AF_INET) {
		if (len < (int)sizeof(struct sockaddr_in))
			return false;
		__builtin_memcpy(&s4, &s6, sizeof(s4));
		v4_mapped(d->addr, s4.sin_addr.s_addr);
		d->port = bpf_ntohs(s4.sin_port);
		return true;
	}
	if (d->family == AF_INET6) {
		if (len < 24)
			return false;
		__builtin_memcpy(d->addr, &s6.sin6_addr, 16);
		d->port = bpf_ntohs(s6.sin6_port);
		return true;
	}
	return false;
}

static __always_inline bool is_proxy_addr(const struct lilith_config *cfg, const struct dest *d)
{
	__u8 p4[16];
	__u32 a[4];

	__builtin_memcpy(a, d->addr, 16);
	v4_mapped(p4, cfg->proxy_v4);
	return addr6_eq(a, p4) || addr6_eq(a, cfg->proxy_v6);
}

/* 0 or -EPERM (with an event) for traffic of protocol proto to d. */
static __always_inline int net_verdict(const struct lilith_config *cfg, const struct lilith_ident *id,
				       __u32 hook, int proto, const struct dest *d)
{
	bool proxy = is_proxy_addr(cfg, d);
	bool intercept = intercepted(cfg);

	if (proto == IPPROTO_TCP) {
		/* Where interception covers the task, the cgroup connect hook,
		 * which runs after this one, rewrites the connect to the proxy. */
		if ((proxy && d->port == cfg->proxy_port) || intercept)
			return 0;
		return deny_addr(hook, R_NOT_PROXY, id, d->family, d->addr, d->port);
	}
	if (proto == IPPROTO_UDP) {
		if ((proxy && d->port == cfg->dns_port) || (intercept && d->port == DNS_PORT))
			return 0;
		return deny_addr(hook, R_UDP, id, d->family, d->addr, d->port);
	}
	if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6)
		return deny_addr(hook, R_ICMP, id, d->family, d->addr, d->port);
	return deny_addr(hook, R_PROTOCOL, id, d->family, d->addr, d->port);
}

#endif
