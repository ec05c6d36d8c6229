// Byte relay between a client and its original destination, both directions,
// with backpressure, half-close propagated (allowHalfOpen) and resets
// propagated as resets. Every relay is bounded in time: idle (no bytes either
// way) and, for tunnels, total. A relay may carry a re-check that runs before
// client bytes go on whenever the agent's taint changed since the decision, so
// a stream opened while clean stops carrying data once the session is not.
import net from 'node:net';
import type { Destination } from '../origin.js';

export function connectUpstream(dest: Destination): net.Socket {
  const s = net.connect({ host: dest.address, port: dest.port, family: dest.family, allowHalfOpen: true, noDelay: true });
  return s;
}

export interface RelayOptions {
  idleTimeoutMs: number;
  /** Total lifetime of the relay; the connection is reset when it passes. */
  maxMs?: number;
  /** Called before client bytes are forwarded; false resets both sides (the decision no longer holds). */
  stillAllowed?: () => boolean;
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
  opts: RelayOptions,
  upstream: net.Socket = connectUpstream(dest),
): net.Socket {
  if (initial.length) upstream.write(initial);
  let total: NodeJS.Timeout | null = null;
  const kill = () => {
    if (total) clearTimeout(total);
    if (!client.destroyed) client.resetAndDestroy();
    if (!upstream.destroyed) upstream.resetAndDestroy();
  };
  upstream.on('error', kill);
  client.on('error', kill);
  upstream.on('timeout', kill);
  client.on('timeout', kill);
  upstream.setTimeout(opts.idleTimeoutMs);
  client.setTimeout(opts.idleTimeoutMs);
  if (opts.maxMs) {
    total = setTimeout(kill, opts.maxMs);
    total.unref();
  }
  const finish = () => {
    if (total) clearTimeout(total);
    // Both directions done: release both fds now, not at the idle timeout.
    if (!client.destroyed) client.destroy();
    if (!upstream.destroyed) upstream.destroy();
  };
  // A side that closes completely (not just half) ends the relay.
  upstream.on('close', () => {
    if (!client.destroyed && !client.writableEnded) client.end();
    if (!client.destroyed && client.readableEnded) finish();
  });
  client.on('close', finish);
  // Both halves closed cleanly: nothing more can flow.
  const bothEnded = () => {
    if (client.readableEnded && upstream.readableEnded && client.writableFinished && upstream.writableFinished) finish();
  };
  client.on('end', bothEnded);
  upstream.on('end', bothEnded);
  client.on('finish', bothEnded);
  upstream.on('finish', bothEnded);
  const check = opts.stillAllowed;
  if (check) {
    client.on('data', (d: Buffer) => {
      if (!check()) return kill();
      if (!upstream.write(d)) {
        client.pause();
        upstream.once('drain', () => client.resume());
      }
    });
    client.on('end', () => upstream.end());
  } else client.pipe(upstream);
  upstream.pipe(client);
  client.resume();
  return upstream;
}
