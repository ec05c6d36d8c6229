// Byte relay between a client and its original destination, both directions,
// with backpressure (pipe), half-close propagated (allowHalfOpen) and resets
// propagated as resets.
import net from 'node:net';
import type { Destination } from '../origin.js';

export function connectUpstream(dest: Destination): net.Socket {
  const s = net.connect({ host: dest.address, port: dest.port, family: dest.family, allowHalfOpen: true, noDelay: true });
  return s;
}

/**
 * Relays `client` ⇄ a new connection to `dest`, first sending `initial` (bytes
 * already read from the client). An upstream that refuses or resets makes the
 * client see a reset; a client that vanishes tears the upstream down.
 */
export function relay(
  client: net.Socket,
  dest: Destination,
  initial: Buffer,
  idleTimeoutMs: number,
  upstream: net.Socket = connectUpstream(dest),
): net.Socket {
  if (initial.length) upstream.write(initial);
  const kill = () => {
    if (!client.destroyed) client.resetAndDestroy();
    if (!upstream.destroyed) upstream.resetAndDestroy();
  };
  upstream.on('error', kill);
  client.on('error', kill);
  upstream.on('timeout', kill);
  client.on('timeout', kill);
  upstream.setTimeout(idleTimeoutMs);
  client.setTimeout(idleTimeoutMs);
  // A side that closes completely (not just half) ends the relay.
  upstream.on('close', () => {
    if (!client.destroyed && !client.writableEnded) client.end();
    if (!client.destroyed && client.readableEnded) client.destroy();
  });
  client.on('close', () => {
    if (!upstream.destroyed) upstream.destroy();
  });
  client.pipe(upstream);
  upstream.pipe(client);
  client.resume();
  return upstream;
}
