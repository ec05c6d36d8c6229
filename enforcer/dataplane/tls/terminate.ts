// The client-facing half of interception: the agent's connection becomes a TLS
// server socket presenting a leaf minted by the node CA for the name the agent
// asked for. The ClientHello the proxy already read is handed back to TLS first
// (Node feeds a wrapped socket's buffered bytes to the TLS engine before reading
// on). The protocol offered by ALPN is the one the upstream already agreed to,
// so both sides speak the same thing.
import type net from 'node:net';
import tls from 'node:tls';
import { resettable } from './upstream.js';

export class TerminateError extends Error {
  constructor(
    readonly code: 'CLIENT_HANDSHAKE_FAILED' | 'CLIENT_HANDSHAKE_TIMEOUT',
    message: string,
  ) {
    super(message);
    this.name = 'TerminateError';
  }
}

/**
 * Completes the TLS handshake with the agent. `initial` is the ClientHello
 * already read; `alpn` the one protocol to select (null: no ALPN). Resolves with
 * the decrypted socket (not flowing), rejects when the agent aborts (a client that
 * does not trust the node CA, or pins its upstream's key) or is too slow.
 */
export function terminateClient(
  client: net.Socket,
  initial: Buffer,
  context: tls.SecureContext,
  alpn: string | null,
  timeoutMs: number,
): Promise<tls.TLSSocket> {
  if (initial.length) client.unshift(initial);
  const s = new tls.TLSSocket(client, {
    isServer: true,
    secureContext: context,
    ALPNProtocols: alpn ? [alpn] : undefined,
    requestCert: false,
  } as tls.TLSSocketOptions);
  resettable(s, client);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      done();
      s.resetAndDestroy();
      reject(new TerminateError('CLIENT_HANDSHAKE_TIMEOUT', `client TLS handshake not completed within ${timeoutMs} ms`));
    }, timeoutMs);
    const ok = () => {
      done();
      // What tls.Server does for its sockets once secure (onServerSocketSecure): without it an
      // HTTP/2 session waits for a 'secureConnect' a server-side socket never emits.
      (s as unknown as { secureConnecting: boolean }).secureConnecting = false;
      // Not set flowing: bytes after the handshake stay buffered for whoever reads next.
      resolve(s);
    };
    const bad = (err: Error) => {
      done();
      s.destroy();
      // OpenSSL's text carries the alert ("tlsv1 alert unknown ca"): kept, on one line.
      const text = /alert [a-z ]+/.exec(err.message)?.[0] ?? err.message.replace(/\s+/g, ' ').trim();
      reject(new TerminateError('CLIENT_HANDSHAKE_FAILED', `client TLS handshake failed: ${text}`));
    };
    const closed = () => bad(new Error('client closed'));
    const done = () => {
      clearTimeout(t);
      s.off('secure', ok);
      s.off('error', bad);
      s.off('close', closed);
    };
    s.once('secure', ok);
    s.once('error', bad);
    s.once('close', closed);
  });
}
