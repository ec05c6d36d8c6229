// TLS interception, after a permitted TLS connect: policy decides whether this
// destination is terminated (Action::"intercept"); if not, the stream passes
// through on its SNI decision as before. If so, the upstream is reached first,
// over TLS with full verification (a certificate that fails is a denial, never
// a downgrade), offering only the application protocols the enforcer decides
// (h2, http/1.1); then the agent's handshake completes with a leaf from the node
// CA and the protocol the upstream chose. The decrypted stream goes to the same
// deciding relays as plaintext: HTTP/1.1 (and MCP over it) or HTTP/2 per stream.
import type net from 'node:net';
import type tls from 'node:tls';
import type { LilithConfig } from '../../../capsule/config.js';
import type { EntityUid } from '../../../cedar/types.js';
import { formatDestination, type Origin } from '../origin.js';
import type { ClientHello } from '../protocols/tls.js';
import type { Decider, RequestSpec } from '../decide.js';
import type { InterceptionCa } from '../tls/ca.js';
import { clientCertificate } from '../tls/client-cert.js';
import type { IdentityCa, Svid } from '../tls/svid.js';
import { connectVerified, handshake, isCertificateError, lateRefusal } from '../tls/upstream.js';
import { terminateClient } from '../tls/terminate.js';
import { declaredUpstream } from './admission.js';
import { HttpConnection, type HttpDeps, type Limits } from './http.js';
import { relayH2 } from './h2.js';

/** What the dataplane needs to intercept: the node CA (and the identity CA, for upstreams asking for a client certificate). */
export interface Interception {
  ca: InterceptionCa;
  identity?: IdentityCa | null;
}

const ignoreError = (): void => undefined;

/** Application protocols the enforcer can decide inside TLS, in no particular preference. */
const DECIDABLE_ALPN = new Set(['h2', 'http/1.1']);

export interface InterceptInput {
  client: net.Socket;
  origin: Origin;
  hello: ClientHello;
  /** The bytes read so far: the whole ClientHello. */
  initial: Buffer;
  /** context.sni_dns of the connect decision (how the SNI compares with the agent's DNS answers). */
  sniDns?: string;
  config: LilithConfig | null;
  limits: Limits;
  http: HttpDeps;
  tunnelMaxMs: number;
  /** Handshake deadline for each side. */
  handshakeTimeoutMs: number;
  /** The destination is a declared mcp/http upstream: not intercepted means refused, never passed through. */
  mustIntercept?: boolean;
}

/**
 * Decides interception for a permitted TLS connection. Returns false when the
 * policy does not intercept it (the caller relays it as before); true when the
 * connection is now owned here (intercepted, or refused and reset).
 */
export function maybeIntercept(input: InterceptInput, interception: Interception, decider: Decider): boolean {
  const { origin, hello } = input;
  // From here until a relay takes it, the agent's socket has no other 'error' listener, and it
  // still reads: an agent resetting its connection while the upstream is reached would otherwise
  // be an unhandled 'error' that ends the whole dataplane. The error destroys it; the steps below
  // check for that.
  input.client.on('error', ignoreError);
  const d = origin.destination;
  const name = hello.sni ?? d.address;
  const resource: EntityUid = hello.sni ? { type: 'Host', id: hello.sni } : { type: 'Endpoint', id: formatDestination(d) };
  const context = (): RequestSpec['context'] => {
    const c: RequestSpec['context'] = { protocol: 'tls', ip: d.address, port: d.port };
    if (hello.sni) c.sni = hello.sni;
    if (input.sniDns) c.sni_dns = input.sniDns;
    if (hello.alpn.length) c.alpn = hello.alpn;
    return c;
  };
  const decide = (refuse?: string) =>
    decider.decide({
      origin,
      protocol: 'tls',
      fallback: { action: 'intercept', resource },
      build: () => ({ action: 'intercept', resource, context: context(), refuse }),
    });
  const verdict = decide();
  if (!verdict.allowed) {
    if (!input.mustIntercept) {
      input.client.off('error', ignoreError);
      return false;
    }
    decide(
      `destination is a declared MCP/HTTP upstream: its TLS is decided per request or refused (${verdict.reason ?? 'intercept not permitted'})`,
    );
    input.client.resetAndDestroy();
    return true;
  }

  // Offered upstream: what the client offered that the enforcer decides. A client offering
  // only other protocols cannot be decided inside TLS: refused, not passed through.
  const offer = hello.alpn.filter((p) => DECIDABLE_ALPN.has(p));
  if (hello.alpn.length && !offer.length) {
    decide(`intercepted TLS offers no decidable application protocol (ALPN ${hello.alpn.join(', ')})`);
    input.client.resetAndDestroy();
    return true;
  }
  const alias = declaredUpstream(input.config, d)?.alias;
  const declared = alias ? input.config?.upstreams[alias] : undefined;
  const pinnedCa = declared?.ca;
  // The agent's SVID when the upstream asks for one (tls.client_certificate), as originated TLS presents it.
  const spiffeId = input.http.agentKey.startsWith('spiffe://') ? input.http.agentKey : undefined;
  let clientCert: Svid | undefined;
  const connect = (alpn: string[]) =>
    connectVerified(d, { servername: name, alpn, pinnedCa, clientCert, idleTimeoutMs: input.limits.idleTimeoutMs });
  const failed = (err: NodeJS.ErrnoException) =>
    decide(
      isCertificateError(err)
        ? `upstream certificate failed verification (${err.code}): ${err.message}`
        : `upstream TLS connection failed: ${err.message}`,
    );
  /**
   * Audits, once, an upstream connection failing the way that makes it a denial: a certificate that
   * fails verification, or (TLS 1.3) a refusal of our client certificate that arrives after the
   * handshake, when the relay may already own the connection. The relay answers the agent (a 502,
   * or its HTTP/2 streams refused); this says why. Returns whether it audited.
   */
  const watch = (s: tls.TLSSocket): (() => boolean) => {
    let audited = false;
    s.once('error', (err: NodeJS.ErrnoException) => {
      const why = lateRefusal(s, err);
      if (why) decide(why);
      else if (isCertificateError(err)) failed(err);
      else return;
      audited = true;
    });
    return () => audited;
  };
  let up: tls.TLSSocket | undefined;
  void (async () => {
    try {
      const cert = clientCertificate(alias ?? '', declared, interception.identity ?? null, spiffeId);
      clientCert = (cert instanceof Promise ? await cert : cert) ?? undefined;
    } catch (err) {
      decide((err as Error).message);
      input.client.resetAndDestroy();
      return;
    }
    if (input.client.destroyed) return;
    up = connect(offer);
    try {
      await handshake(up, input.handshakeTimeoutMs);
    } catch (err) {
      failed(err as NodeJS.ErrnoException);
      up.destroy();
      input.client.resetAndDestroy();
      return;
    }
    // Until a relay owns it, an upstream error must not reach the process; it is kept, since under
    // TLS 1.3 an upstream refusing our client certificate (or the lack of one) says so only now.
    let parkedError: NodeJS.ErrnoException | null = null;
    up.on('error', (err) => {
      parkedError ??= err;
    });
    const refusalAudited = watch(up);
    const chosen = up.alpnProtocol || null;
    // The agent gets the protocol the upstream agreed to; an upstream without ALPN speaks HTTP/1.1.
    const clientAlpn = chosen ?? (hello.alpn.includes('http/1.1') ? 'http/1.1' : null);
    if (input.client.destroyed) {
      up.destroy();
      return;
    }
    let agent: tls.TLSSocket;
    try {
      const ctx = await interception.ca.contextFor(name);
      agent = await terminateClient(input.client, input.initial, ctx, clientAlpn, input.handshakeTimeoutMs);
    } catch (err) {
      up.destroy();
      input.client.destroy();
      decide(`${(err as Error).message} (a client that pins its server's certificate needs its host in Zone::"tls-passthrough")`);
      return;
    }
    if (parkedError || up.destroyed) {
      // Failed while the agent's handshake ran: a denial, not a relay over a dead connection.
      if (!refusalAudited())
        failed(parkedError ?? Object.assign(new Error('upstream closed the connection after the TLS handshake'), { code: 'ECONNRESET' }));
      up.destroy();
      // A reset, as for every refusal (safe on a TLS socket: tls/upstream.ts resettable).
      agent.resetAndDestroy();
      return;
    }
    if (agent.alpnProtocol === 'h2') {
      relayH2(agent, up, {
        origin,
        authorityName: name,
        decider,
        config: input.config,
        limits: input.limits,
        http: input.http,
        upstreamFailed: (reason) => decide(reason),
      });
      return;
    }
    if (chosen === 'h2') {
      // The agent did not take h2 after all: an HTTP/1 upstream connection instead.
      up.destroy();
    }
    let first: tls.TLSSocket | null = chosen === 'h2' ? null : up;
    const upstreamFactory = (): net.Socket => {
      const ready = first;
      first = null;
      if (ready && !ready.destroyed && ready.writable) return ready;
      const s = connect(['http/1.1']);
      watch(s);
      return s;
    };
    new HttpConnection(agent, origin, input.http, input.limits, input.config, {
      tunnelMaxMs: input.tunnelMaxMs,
      connectUpstream: upstreamFactory,
      tlsName: name,
    }).start(Buffer.alloc(0));
  })().catch((err) => {
    process.stderr.write(`lilith dataplane: internal error intercepting TLS (dropped): ${(err as Error)?.stack ?? String(err)}\n`);
    up?.destroy();
    input.client.destroy();
  });
  return true;
}
