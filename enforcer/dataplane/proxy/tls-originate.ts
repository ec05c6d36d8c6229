// TLS origination: an upstream lilith.json marks `tls` is spoken to in plaintext
// HTTP by the agent; every request is decided as plaintext, then relayed over
// TLS 1.3 to the same host (or tls.port), its certificate verified against the
// CA pinned in the capsule (upstreams.*.ca) or else the system store. When the
// upstream asks for it (tls.client_certificate) the enforcer presents the agent's
// X.509-SVID from its identity CA. A certificate that fails verification is a
// denial, audited, and nothing of the request leaves: TLS holds written bytes
// until the handshake has verified, and there is no plaintext fallback.
import net from 'node:net';
import type { LilithConfig } from '../../../capsule/config.js';
import type { EntityUid } from '../../../cedar/types.js';
import type { Decider } from '../decide.js';
import type { Origin } from '../origin.js';
import type { IdentityCa, Svid } from '../tls/svid.js';
import { clientCertificate } from '../tls/client-cert.js';
import { connectVerified, isCertificateError } from '../tls/upstream.js';

export interface OriginationInput {
  client: net.Socket;
  origin: Origin;
  config: LilithConfig | null;
  /** The declared upstream's alias (lilith.json upstreams). */
  alias: string;
  /** The agent's SPIFFE ID (undefined: unknown agent, whose requests are all denied anyway). */
  spiffeId: string | undefined;
  decider: Decider;
  identity: IdentityCa | null;
  idleTimeoutMs: number;
}

/**
 * Calls `start` with the factory of upstream connections the HTTP relay is to
 * use: undefined (plain TCP) when the upstream is not marked tls; at once when
 * no client certificate must be issued first, else once it is. A client
 * certificate that cannot be issued refuses the connection (audited).
 */
export function withOriginatedTls(input: OriginationInput, start: (connectUpstream?: () => net.Socket) => void): void {
  const up = input.config?.upstreams[input.alias];
  if (!up?.tls) return start(undefined);
  const t = up.tls;
  const address = input.origin.destination.address;
  const servername = (t.server_name ?? hostOf(up.address)).toLowerCase();
  const dest = t.port ? { ...input.origin.destination, port: t.port } : input.origin.destination;
  const resource: EntityUid = net.isIP(servername)
    ? { type: 'Endpoint', id: `${servername}:${dest.port}` }
    : { type: 'Host', id: servername };
  const deny = (reason: string) =>
    input.decider.decide({
      origin: input.origin,
      protocol: 'tls',
      fallback: { action: 'connect', resource },
      build: () => ({ action: 'connect', resource, context: { protocol: 'tls', ip: address, port: dest.port }, refuse: reason }),
    });
  const factory = (clientCert?: Svid) => (): net.Socket => {
    const s = connectVerified(dest, {
      servername,
      alpn: ['http/1.1'],
      pinnedCa: up.ca,
      floor: 'TLSv1.3',
      clientCert,
      idleTimeoutMs: input.idleTimeoutMs,
    });
    // A failure before the upstream has answered anything is a denial (under TLS 1.3 a server
    // refusing the client certificate says so only after the client's handshake is done);
    // a later error is the relay's (502 or reset). The relay reads the socket from the start.
    let established = false;
    s.once('data', () => {
      established = true;
    });
    s.once('error', (err: NodeJS.ErrnoException) => {
      if (established) return;
      deny(
        isCertificateError(err)
          ? `originated TLS to ${servername}: upstream certificate failed verification (${err.code}): ${err.message}`
          : `originated TLS to ${servername} failed: ${/alert [a-z ]+/.exec(err.message)?.[0] ?? err.message.replace(/\s+/g, ' ').trim()}`,
      );
    });
    return s;
  };
  let cert: Svid | null | Promise<Svid>;
  try {
    cert = clientCertificate(input.alias, up, input.identity, input.spiffeId);
  } catch (err) {
    deny((err as Error).message);
    return void input.client.resetAndDestroy();
  }
  if (!(cert instanceof Promise)) return start(factory(cert ?? undefined));
  // While the certificate is issued nothing else listens for the agent socket's errors: an agent
  // resetting it then must not be an unhandled 'error' (the end of the dataplane).
  const ignoreError = (): void => undefined;
  input.client.on('error', ignoreError);
  cert.then(
    (svid) => {
      input.client.off('error', ignoreError);
      if (!input.client.destroyed) start(factory(svid));
    },
    (err: Error) => {
      deny(err.message);
      input.client.resetAndDestroy();
    },
  );
}

/** The host of "host:port" / "[v6]:port". */
function hostOf(address: string): string {
  const v6 = /^\[([^\]]+)\]:\d+$/.exec(address);
  return v6 ? v6[1] : address.replace(/:\d+$/, '');
}
