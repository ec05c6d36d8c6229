// The proxy's view of a redirected connection. The connect/sockops programs
// record, per proxy-side peer tuple (lil_orig_tp), where the client meant to go
// and who it was; the proxy looks that up by the accepted socket's peer address
// because after the redirect the destination on the wire is the proxy itself.
import { isIPv4, isIPv6 } from 'node:net';
import { isPort } from './config.js';
import { decodeOrig, tupleKey, type OriginalDestination } from './layout.js';
import type { PinnedMaps } from './pinned-maps.js';

/** null when the peer is not an IP:port or the connection was not redirected by Lilith. */
export function lookupOriginalDestination(
  maps: PinnedMaps,
  peer: { remoteAddress?: string; remotePort?: number },
): OriginalDestination | null {
  if (!peer.remoteAddress || !(isIPv4(peer.remoteAddress) || isIPv6(peer.remoteAddress)) || !isPort(peer.remotePort)) return null;
  const v = maps.get('lil_orig_tp').lookup(tupleKey(peer.remoteAddress, peer.remotePort));
  return v ? decodeOrig(v) : null;
}
