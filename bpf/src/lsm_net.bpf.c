/* BPF-LSM, sockets: managed tasks reach only the proxy (directly, or through
 * the cgroup redirection), never raw/packet/ICMP, never UDP except DNS, and
 * not at all once the daemon's heartbeat is stale or before classification. */
#include "ident.h"
#include "netpolicy.h"

char LICENSE[] SEC("license") = "GPL";

/* Copy the task's identity onto the socket for the cgroup programs, which run
 * after these hooks in the same syscall. Unmanaged tasks only clear a tag a
 * managed task left (a socket handed over by SCM_RIGHTS, say). */
static __always_inline void tag_sock(struct sock *sk, bool managed, const struct lilith_ident *id)
{
	struct lilith_ident *tag;
	__u32 identity = id->identity, flags = id->flags;

	if (!sk)
		return;
	tag = bpf_sk_storage_get(&lil_sk_tag, sk, 0, managed ? BPF_SK_STORAGE_GET_F_CREATE : 0);
	if (!tag)
		return;
	tag->identity = managed ? identity : 0;
	tag->flags = managed ? flags : 0;
}

static __always_inline bool inet(int family)
{
	return family == AF_INET || family == AF_INET6;
}

/* Heartbeat and classification gate every managed network operation. */
static __always_inline int gate(const struct lilith_config *cfg, const struct lilith_ident *id, __u32 hook,
				const struct dest *d)
{
	if (heartbeat_stale(cfg))
		return deny_addr(hook, R_HEARTBEAT_STALE, id, d->family, d->addr, d->port);
	if (!(id->flags & ID_CLASSIFIED))
		return deny_addr(hook, R_UNCLASSIFIED, id, d->family, d->addr, d->port);
	return 0;
}

SEC("lsm/socket_create")
int BPF_PROG(lil_sock_create, int family, int type, int protocol, int kern, int ret)
{
	struct lilith_config *cfg;
	struct lilith_ident id;

	if (ret)
		return ret;
	if (kern || !task_ident(&id))
		return 0;
	type &= 0xf;
	if (family == AF_PACKET)
		return deny_addr(HOOK_SOCK_CREATE, R_PACKET, &id, family, NULL, 0);
	cfg = lil_cfg();
	if (cfg && family >= 0 && family < 64 && ((cfg->denied_families >> family) & 1))
		return deny_addr(HOOK_SOCK_CREATE, R_FAMILY, &id, family, NULL, 0);
	if (type == SOCK_RAW)
		return deny_addr(HOOK_SOCK_CREATE, R_RAW, &id, family, NULL, 0);
	if ((family == AF_INET && protocol == IPPROTO_ICMP) || (family == AF_INET6 && protocol == IPPROTO_ICMPV6))
		return deny_addr(HOOK_SOCK_CREATE, R_ICMP, &id, family, NULL, 0);
	return 0;
}

SEC("lsm/socket_post_create")
int BPF_PROG(lil_sock_post, struct socket *sock, int family, int type, int protocol, int kern, int ret)
{
	struct lilith_ident id;

	if (ret)
		return ret;
	if (!kern && inet(family) && task_ident(&id))
		tag_sock(sock->sk, true, &id);
	return 0;
}

SEC("lsm/socket_connect")
int BPF_PROG(lil_sock_connect, struct socket *sock, struct sockaddr *address, int addrlen, int ret)
{
	struct lilith_config *cfg;
	struct lilith_ident id = {};
	struct sock *sk;
	struct dest d = {};
	bool managed;
	int err;

	if (ret)
		return ret;
	sk = sock->sk;
	if (!sk || !inet(sk->__sk_common.skc_family))
		return 0;
	managed = task_ident(&id);
	tag_sock(sk, managed, &id);
	if (!managed || !read_dest(address, addrlen, &d))
		return 0; /* AF_UNSPEC (disconnect) and malformed addresses: the kernel decides */
	cfg = lil_cfg();
	if (!cfg)
		return -EPERM;
	err = gate(cfg, &id, HOOK_SOCK_CONNECT, &d);
	if (err)
		return err;
	return net_verdict(cfg, &id, HOOK_SOCK_CONNECT, sk->sk_protocol, &d);
}

/* The peer of a connected socket, for sends without an address. */
static __always_inline void peer_dest(struct sock *sk, struct dest *d)
{
	d->family = sk->__sk_common.skc_family;
	if (d->family == AF_INET)
		v4_mapped(d->addr, sk->__sk_common.skc_daddr);
	else
		BPF_CORE_READ_INTO(&d->addr, sk, __sk_common.skc_v6_daddr);
	d->port = bpf_ntohs(sk->__sk_common.skc_dport);
}

SEC("lsm/socket_sendmsg")
int BPF_PROG(lil_sock_sendmsg, struct socket *sock, struct msghdr *msg, int size, int ret)
{
	struct lilith_config *cfg;
	struct lilith_ident id = {};
	struct dest d = {};
	struct sock *sk;
	void *name;
	int proto, err, namelen;
	bool managed;

	if (ret)
		return ret;
	sk = sock->sk;
	if (!sk || !inet(sk->__sk_common.skc_family))
		return 0;
	managed = task_ident(&id);
	tag_sock(sk, managed, &id);
	if (!managed)
		return 0;
	cfg = lil_cfg();
	if (!cfg)
		return -EPERM;
	name = msg->msg_name;
	namelen = msg->msg_namelen;
	proto = sk->sk_protocol;
	if (!name || !read_dest(name, namelen, &d))
		peer_dest(sk, &d);
	err = gate(cfg, &id, HOOK_SOCK_SENDMSG, &d);
	if (err)
		return err;
	if (proto == IPPROTO_TCP) {
		/* sendmsg(MSG_FASTOPEN) connects without socket_connect: judge
		 * its address like a connect. Other TCP sends go to a peer that
		 * connect already judged. */
		if (!(msg->msg_flags & MSG_FASTOPEN) || !name)
			return 0;
		if ((is_proxy_addr(cfg, &d) && d.port == cfg->proxy_port) || intercepted(cfg))
			return 0;
		return deny_addr(HOOK_SOCK_SENDMSG, R_FASTOPEN, &id, d.family, d.addr, d.port);
	}
	return net_verdict(cfg, &id, HOOK_SOCK_SENDMSG, proto, &d);
}
