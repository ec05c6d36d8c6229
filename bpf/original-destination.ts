// The proxy's view of a redirected connection. The connect/sockops programs
// record, per proxy-side peer tuple (lil_orig_tp), where the client meant to go
// and who it was; the proxy looks that up by the accepted socket's peer address
// because after the redirect the destination on the wire is the proxy itself.
// Datagrams to the DNS front are recorded the same way per packet (cgroup_skb
// egress), under their own protocol in the key, which works from any network
// namespace where the host's /proc/net/udp does not.
import { isIPv4, isIPv6 } from 'node:net';
import { isPort } from './config.js';
import { decodeOrig, tupleKey, type OriginalDestination } from './layout.js';
import type { PinnedMaps } from './pinned-maps.js';

/** The peer of an accepted connection (`transport` absent or 'tcp') or of a received DNS datagram ('udp'). */
export interface PeerTuple {
  remoteAddress?: string;
  remotePort?: number;
  transport?: 'tcp' | 'udp';
}

/** null when the peer is not an IP:port or the connection/datagram was not redirected by Lilith. */
export function lookupOriginalDestination(maps: PinnedMaps, peer: PeerTuple): OriginalDestination | null {
  if (!peer.remoteAddress || !(isIPv4(peer.remoteAddress) || isIPv6(peer.remoteAddress)) || !isPort(peer.remotePort)) return null;
  const v = maps.get('lil_orig_tp').lookup(tupleKey(peer.remoteAddress, peer.remotePort, peer.transport === 'udp' ? 'udp' : 'tcp'));
  return v ? decodeOrig(v) : null;
}
