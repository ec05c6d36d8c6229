/* cgroup sock_addr programs: the interception path. Managed TCP connects go
 * to the proxy with the original destination recorded by socket cookie;
 * UDP 53 goes to the proxy's DNS port; other UDP is denied; getpeername and
 * recvmsg hand the application its original address back. In cgroup-only
 * mode (no BPF-LSM) these are the whole network enforcement. */
#include "common.h"

char LICENSE[] SEC("license") = "GPL";

#define ALLOW 1
#define REFUSE 0 /* sock_addr programs: 0 makes the syscall fail with EPERM */

/* Managed: the socket carries a managed tag from the LSM side, or the
 * current task is in a managed cgroup. */
static __always_inline bool sock_managed(struct bpf_sock_addr *ctx, struct lilith_ident *out)
{
	struct lilith_ident *tag;
	struct bpf_sock *sk = ctx->sk;

	if (sk) {
		tag = bpf_sk_storage_get(&lil_sk_tag, sk, 0, 0);
		if (tag && (tag->flags & ID_MANAGED)) {
			*out = *tag;
			return true;
		}
	}
	return cgroup_ident(out);
}

static __always_inline void remember(struct bpf_sock_addr *ctx, const __u8 *addr16, __u16 port, __u16 family,
				     const struct lilith_ident *id)
{
	struct lilith_orig o = {};
	__u64 cookie = bpf_get_socket_cookie(ctx);
	__u64 pt = bpf_get_current_pid_tgid(), ug = bpf_get_current_uid_gid();

	__builtin_memcpy(o.addr, addr16, 16);
	o.port = port;
	o.family = family;
	o.pid = (__u32)pt;
	o.tgid = pt >> 32;
	o.uid = (__u32)ug;
	o.gid = ug >> 32;
	o.identity = id->identity;
	o.cgroup_id = bpf_get_current_cgroup_id();
	bpf_map_update_elem(&lil_orig_ck, &cookie, &o, BPF_ANY);
}

static __always_inline void forget(struct bpf_sock_addr *ctx)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);

	bpf_map_delete_elem(&lil_orig_ck, &cookie);
}

/* What to do with a managed connect/sendmsg to addr16:port. */
enum action { ACT_PASS, ACT_TO_PROXY, ACT_TO_DNS };

static __always_inline int decide(struct bpf_sock_addr *ctx, __u32 hook, const __u8 *addr16, __u16 port,
				  __u16 family, enum action *act)
{
	struct lilith_config *cfg = lil_cfg();
	struct lilith_ident id;
	__u8 p4[16];
	__u32 a[4];
	bool proxy;

	*act = ACT_PASS;
	if (!sock_managed(ctx, &id))
		return ALLOW;
	if (heartbeat_stale(cfg)) {
		deny_addr(hook, R_HEARTBEAT_STALE, &id, family, addr16, port);
		return REFUSE;
	}
	if (!(id.flags & ID_CLASSIFIED)) {
		deny_addr(hook, R_UNCLASSIFIED, &id, family, addr16, port);
		return REFUSE;
	}
	__builtin_memcpy(a, addr16, 16);
	v4_mapped(p4, cfg->proxy_v4);
	proxy = addr6_eq(a, p4) || addr6_eq(a, cfg->proxy_v6);
	if (ctx->protocol == IPPROTO_TCP) {
		if (proxy && port == cfg->proxy_port) {
			forget(ctx);
			return ALLOW;
		}
		remember(ctx, addr16, port, family, &id);
		*act = ACT_TO_PROXY;
		return ALLOW;
	}
	if (ctx->protocol == IPPROTO_UDP) {
		if (proxy && port == cfg->dns_port) {
			/* Straight to the front: recorded too, so the front can attribute it (cgroup_skb.bpf.c). */
			remember(ctx, addr16, port, family, &id);
			return ALLOW;
		}
		if (port == DNS_PORT) {
			remember(ctx, addr16, port, family, &id);
			*act = ACT_TO_DNS;
			return ALLOW;
		}
		deny_addr(hook, R_UDP, &id, family, addr16, port);
		return REFUSE;
	}
	deny_addr(hook, R_PROTOCOL, &id, family, addr16, port);
	return REFUSE;
}

static __always_inline int redirect4(struct bpf_sock_addr *ctx, __u32 hook)
{
	struct lilith_config *cfg;
	enum action act;
	__u8 dst[16];
	int verdict;

	v4_mapped(dst, ctx->user_ip4);
	verdict = decide(ctx, hook, dst, bpf_ntohs(ctx->user_port), AF_INET, &act);
	if (act == ACT_PASS)
		return verdict;
	cfg = lil_cfg();
	if (!cfg)
		return REFUSE;
	ctx->user_ip4 = cfg->proxy_v4;
	ctx->user_port = bpf_htons(act == ACT_TO_DNS ? cfg->dns_port : cfg->proxy_port);
	return ALLOW;
}

static __always_inline int redirect6(struct bpf_sock_addr *ctx, __u32 hook)
{
	struct lilith_config *cfg;
	enum action act;
	__u32 dst[4], to[4];
	int verdict;

	dst[0] = ctx->user_ip6[0];
	dst[1] = ctx->user_ip6[1];
	dst[2] = ctx->user_ip6[2];
	dst[3] = ctx->user_ip6[3];
	verdict = decide(ctx, hook, (__u8 *)dst, bpf_ntohs(ctx->user_port), AF_INET6, &act);
	if (act == ACT_PASS)
		return verdict;
	cfg = lil_cfg();
	if (!cfg)
		return REFUSE;
	if (is_v4_mapped(dst)) {
		/* ::ffff:a.b.c.d is IPv4 underneath: send it to the IPv4 proxy. */
		to[0] = 0;
		to[1] = 0;
		to[2] = bpf_htonl(0x0000ffff);
		to[3] = cfg->proxy_v4;
	} else {
		__builtin_memcpy(to, cfg->proxy_v6, 16);
	}
	ctx->user_ip6[0] = to[0];
	ctx->user_ip6[1] = to[1];
	ctx->user_ip6[2] = to[2];
	ctx->user_ip6[3] = to[3];
	ctx->user_port = bpf_htons(act == ACT_TO_DNS ? cfg->dns_port : cfg->proxy_port);
	return ALLOW;
}

SEC("cgroup/connect4")
int lil_connect4(struct bpf_sock_addr *ctx)
{
	return redirect4(ctx, HOOK_CONNECT4);
}

SEC("cgroup/connect6")
int lil_connect6(struct bpf_sock_addr *ctx)
{
	return redirect6(ctx, HOOK_CONNECT6);
}

/* Unconnected UDP (sendto/sendmsg with an address). */
SEC("cgroup/sendmsg4")
int lil_sendmsg4(struct bpf_sock_addr *ctx)
{
	return redirect4(ctx, HOOK_SENDMSG4);
}

SEC("cgroup/sendmsg6")
int lil_sendmsg6(struct bpf_sock_addr *ctx)
{
	return redirect6(ctx, HOOK_SENDMSG6);
}

/* Restore the original address when the one the kernel reports is the
 * proxy's (the rewrite), so the application never sees it. */
static __always_inline void restore4(struct bpf_sock_addr *ctx)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct lilith_config *cfg = lil_cfg();
	struct lilith_orig *o = bpf_map_lookup_elem(&lil_orig_ck, &cookie);
	__u16 port = bpf_ntohs(ctx->user_port);
	__u32 a4;

	if (!o || !cfg || ctx->user_ip4 != cfg->proxy_v4 || (port != cfg->proxy_port && port != cfg->dns_port))
		return;
	__builtin_memcpy(&a4, o->addr + 12, 4);
	ctx->user_ip4 = a4;
	ctx->user_port = bpf_htons(o->port);
}

static __always_inline void restore6(struct bpf_sock_addr *ctx)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct lilith_config *cfg = lil_cfg();
	struct lilith_orig *o = bpf_map_lookup_elem(&lil_orig_ck, &cookie);
	__u16 port = bpf_ntohs(ctx->user_port);
	__u32 a[4];

	if (!o || !cfg || (port != cfg->proxy_port && port != cfg->dns_port))
		return;
	__builtin_memcpy(a, o->addr, 16);
	ctx->user_ip6[0] = a[0];
	ctx->user_ip6[1] = a[1];
	ctx->user_ip6[2] = a[2];
	ctx->user_ip6[3] = a[3];
	ctx->user_port = bpf_htons(o->port);
}

SEC("cgroup/getpeername4")
int lil_getpeer4(struct bpf_sock_addr *ctx)
{
	restore4(ctx);
	return 1;
}

SEC("cgroup/getpeername6")
int lil_getpeer6(struct bpf_sock_addr *ctx)
{
	restore6(ctx);
	return 1;
}

SEC("cgroup/recvmsg4")
int lil_recvmsg4(struct bpf_sock_addr *ctx)
{
	restore4(ctx);
	return 1;
}

SEC("cgroup/recvmsg6")
int lil_recvmsg6(struct bpf_sock_addr *ctx)
{
	restore6(ctx);
	return 1;
}
