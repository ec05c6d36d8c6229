/* cgroup_skb egress: who sent a datagram to the DNS front. The front sees only
 * the sender's address and UDP port; looking the port up in the host's
 * /proc/net/udp cannot work for an agent in another network namespace (its
 * sockets live in that namespace's table). This program runs in the sender's
 * context for every packet leaving the attached cgroup, in whatever namespace:
 * a UDP packet to the proxy address's DNS port copies the redirect record the
 * connect/sendmsg program wrote for its socket (lil_orig_ck) under the
 * packet's own source address and port (lil_orig_tp, protocol 17 in the key),
 * which is exactly what the front's recvfrom() sees. A packet from a socket
 * with no record (an unmanaged process reusing the address and port) removes
 * the entry first, so a stale record is never read as its sender. Nothing is
 * dropped here: a datagram without a record reaches the front unattributed,
 * and the front refuses it. */
#include "common.h"

char LICENSE[] SEC("license") = "GPL";

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

SEC("cgroup_skb/egress")
int lil_dns_egress(struct __sk_buff *skb)
{
	struct lilith_config *cfg = lil_cfg();
	struct lilith_tuple_key k = {};
	struct lilith_orig *o;
	struct ipv6hdr ip6;
	struct iphdr ip;
	__u16 ports[2];
	__u64 cookie;
	__u32 off;

	if (!cfg || !cfg->dns_port)
		return 1;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
			return 1;
		if (ip.protocol != IPPROTO_UDP || ip.daddr != cfg->proxy_v4)
			return 1;
		off = (__u32)ip.ihl * 4;
		v4_mapped(k.addr, ip.saddr);
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return 1;
		/* Extension headers are not walked: such a datagram stays unattributed (refused). */
		if (ip6.nexthdr != IPPROTO_UDP || !addr6_eq((__u32 *)&ip6.daddr, cfg->proxy_v6))
			return 1;
		off = sizeof(ip6);
		__builtin_memcpy(k.addr, &ip6.saddr, 16);
	} else {
		return 1;
	}
	if (off < 20 || off > 60)
		return 1;
	if (bpf_skb_load_bytes(skb, off, ports, sizeof(ports)))
		return 1;
	if (bpf_ntohs(ports[1]) != cfg->dns_port)
		return 1;
	k.port = bpf_ntohs(ports[0]);
	k.pad = IPPROTO_UDP;
	cookie = bpf_get_socket_cookie(skb);
	o = cookie ? bpf_map_lookup_elem(&lil_orig_ck, &cookie) : 0;
	if (o)
		bpf_map_update_elem(&lil_orig_tp, &k, o, BPF_ANY);
	else
		bpf_map_delete_elem(&lil_orig_tp, &k);
	return 1;
}
