// The re-encrypting half of interception: a TLS connection to the real upstream
// with full certificate verification (chain and name), against the CA pinned for
// that upstream in lilith.json, else the system store (Node's bundled roots,
// NODE_EXTRA_CA_CERTS and the distribution bundle). A certificate that fails
// verification is an error the caller turns into a denial: never a downgrade to
// an unverified or unencrypted connection.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import type { Destination } from '../origin.js';
import type { Svid } from './svid.js';

/** Distribution CA bundles, first one found is used (Debian/Ubuntu, Fedora/RHEL, Alpine/SUSE). */
const SYSTEM_BUNDLES = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt', '/etc/ssl/ca-bundle.pem'];

let systemAnchors: string[] | null = null;
const contexts = new Map<string, tls.SecureContext>();
const MAX_CONTEXTS = 256;

/** The system store: Node's bundled roots, NODE_EXTRA_CA_CERTS and the distribution bundle. Read once. */
function systemStore(): string[] {
  if (!systemAnchors) {
    const ca = [...tls.rootCertificates];
    const extra = process.env.NODE_EXTRA_CA_CERTS;
    for (const f of [...(extra ? [extra] : []), ...SYSTEM_BUNDLES]) {
      try {
        ca.push(readFileSync(f, 'utf8'));
        if (f !== extra) break;
      } catch {
        // absent bundle: the next one, or Node's roots alone
      }
    }
    systemAnchors = ca;
  }
  return systemAnchors;
}

export type TlsFloor = 'TLSv1.2' | 'TLSv1.3';

/**
 * The client context toward an upstream: verification against `pinned` PEM when the
 * capsule pins the upstream's CA, else the system store; the lowest version
 * accepted; the client certificate presented, if any. Made once per combination.
 */
export function trustContext(pinned?: string, floor: TlsFloor = 'TLSv1.2', client?: Svid): tls.SecureContext {
  const key = `${floor}\0${client ? `${client.spiffeId}\0${client.serial}` : ''}\0${pinned ?? ''}`;
  let ctx = contexts.get(key);
  if (!ctx) {
    ctx = tls.createSecureContext({
      ca: pinned ?? systemStore(),
      minVersion: floor,
      ...(client ? { cert: client.chainPem, key: client.keyPem } : {}),
    });
    if (contexts.size >= MAX_CONTEXTS) contexts.delete(contexts.keys().next().value!);
    contexts.set(key, ctx);
  }
  return ctx;
}

/** Resets the cached stores (tests that change NODE_EXTRA_CA_CERTS). */
export function resetTrustCache(): void {
  systemAnchors = null;
  contexts.clear();
}

export interface UpstreamTlsOptions {
  /** The name the certificate must carry (the client's SNI, or the IP when there was none). */
  servername: string;
  /** ALPN offered upstream (already filtered to what the enforcer decides). */
  alpn: string[];
  /** Pinned CA PEM from lilith.json, if any. */
  pinnedCa?: string;
  /** Lowest TLS version accepted (default TLSv1.2; originated TLS is TLSv1.3 only). */
  floor?: TlsFloor;
  /** The agent's client certificate (X.509-SVID), when the upstream is to be shown one. */
  clientCert?: Svid;
  idleTimeoutMs: number;
}

/** OpenSSL / Node codes meaning "the certificate did not verify" (as opposed to a network failure). */
export function isCertificateError(err: NodeJS.ErrnoException): boolean {
  const c = err.code ?? '';
  // An alert the upstream sent (ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED...) is about our side, not its certificate.
  if (c.includes('_ALERT_')) return false;
  return (
    c.startsWith('ERR_TLS_CERT') ||
    /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ISSUER|SIGNATURE|CHAIN|HOSTNAME|EXPIRED|NOT_YET_VALID|REVOKED|PURPOSE|DEPTH/.test(c)
  );
}

/**
 * Why the upstream refused a connection whose handshake had completed, or null when `err` is not
 * such a refusal. Under TLS 1.3 the client's handshake completes before the server has checked
 * the client's certificate: a server refusing ours (or the lack of one) says so with an alert
 * only afterwards. Counted as a refusal: an SSL error (the alert, or a TLS failure of ours) on a
 * verified connection before any application byte came back (bytesRead counts decrypted bytes).
 */
export function lateRefusal(up: tls.TLSSocket, err: NodeJS.ErrnoException): string | null {
  if (!up.authorized || up.bytesRead > 0 || !(err.code ?? '').startsWith('ERR_SSL_')) return null;
  const what = (err as { reason?: unknown }).reason;
  return `upstream refused the TLS connection after the handshake: ${typeof what === 'string' && what ? what : err.message}`;
}

/**
 * Connects to `dest` over TLS with verification on. Returns the socket at once
 * (writes are queued until the handshake completes); `error` reports a failed
 * verification with the certificate code. `resetAndDestroy` resets the TCP
 * connection underneath (a TLSSocket cannot reset itself).
 */
export function connectVerified(dest: Destination, opts: UpstreamTlsOptions): tls.TLSSocket {
  const raw = net.connect({ host: dest.address, port: dest.port, family: dest.family, allowHalfOpen: true, noDelay: true });
  const servername = net.isIP(opts.servername) ? undefined : opts.servername;
  const up = tls.connect({
    socket: raw,
    servername,
    host: opts.servername,
    secureContext: trustContext(opts.pinnedCa, opts.floor, opts.clientCert),
    ALPNProtocols: opts.alpn.length ? opts.alpn : undefined,
    rejectUnauthorized: true,
    minVersion: opts.floor ?? 'TLSv1.2',
    allowHalfOpen: true,
  } as tls.ConnectionOptions);
  resettable(up, raw);
  return up;
}

/** Waits for a verified handshake; rejects with the verification (or network) error. */
export function handshake(up: tls.TLSSocket, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      cleanup();
      reject(Object.assign(new Error(`upstream TLS handshake not completed within ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
    }, timeoutMs);
    const ok = () => {
      cleanup();
      // rejectUnauthorized makes an unverified handshake an error; checked again so a change there cannot slip through.
      if (!up.authorized) reject(Object.assign(new Error(`upstream certificate: ${up.authorizationError}`), { code: 'CERT_UNAUTHORIZED' }));
      else resolve();
    };
    const bad = (err: Error) => {
      cleanup();
      reject(err);
    };
    const closed = () => bad(Object.assign(new Error('upstream closed during the TLS handshake'), { code: 'ECONNRESET' }));
    const cleanup = () => {
      clearTimeout(t);
      up.off('secureConnect', ok);
      up.off('error', bad);
      up.off('close', closed);
    };
    up.once('secureConnect', ok);
    up.once('error', bad);
    up.once('close', closed);
  });
}

/**
 * Makes `resetAndDestroy` on a TLS socket reset the TCP socket under it (Node's
 * own throws ERR_INVALID_HANDLE_TYPE for a TLS socket, nodejs/node#49484).
 *
 * Never by resetting `raw` first: that closes the TCP handle while the TLS wrap
 * still uses it as its stream, and the wrap's OpenSSL state is then freed after
 * the handle (Node 20 crashed with SIGSEGV most times when it ran from a TLS
 * callback such as 'secure', where TLS 1.3 still has session tickets to write).
 * Instead the TLS socket is destroyed the ordinary way, which closes `raw`
 * through the wrap in the order Node expects, with `raw` marked so that its close
 * is a reset (SO_LINGER 0): the flag `resetAndDestroy` itself sets on a plain
 * socket (net.Socket#_reset). Were that flag ever ignored, the close is a FIN:
 * the connection still ends. Not marked while connecting or once a side began
 * its shutdown: libuv refuses a reset then (uv_tcp_close_reset: EINVAL) and
 * leaves the handle open, and no 'close' would ever come; a plain close it is.
 */
export function resettable(s: tls.TLSSocket, raw: net.Socket): void {
  s.resetAndDestroy = () => {
    if (!raw.destroyed && !raw.connecting && !raw.writableEnded && !s.writableEnded)
      (raw as net.Socket & { resetAndClosing?: boolean }).resetAndClosing = true;
    s.destroy();
    // The wrap closes `raw` when it still owns its handle; should it not, `raw` is closed here.
    if (!raw.destroyed) raw.destroy();
    return s;
  };
}
