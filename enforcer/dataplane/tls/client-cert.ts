// Which client certificate the enforcer presents to an upstream, for originated
// and intercepted TLS alike: the agent's X.509-SVID when lilith.json marks the
// upstream tls.client_certificate, none otherwise (nor for an unknown agent,
// whose requests are all denied anyway). The certificate is the agent's, never
// one the agent brought: on an intercepted connection the agent's own client
// certificate (if it sent one) ends at the enforcer.
import type { Upstream } from '../../../capsule/config.js';
import type { IdentityCa, Svid } from './svid.js';

export class ClientCertError extends Error {
  constructor(
    readonly code: 'NO_IDENTITY_CA' | 'SVID_NOT_ISSUED',
    message: string,
  ) {
    super(message);
    this.name = 'ClientCertError';
  }
}

/**
 * The client certificate for `spiffeId` toward upstream `alias`: null when none is
 * to be presented, the certificate at once when a fresh one is cached, else a
 * promise of it. Throws (or rejects with) a ClientCertError when the upstream asks
 * for one and none can be had: the connection is then refused, never made without.
 */
export function clientCertificate(
  alias: string,
  up: Upstream | undefined,
  identity: IdentityCa | null,
  spiffeId: string | undefined,
): Svid | null | Promise<Svid> {
  if (!up?.tls?.client_certificate || !spiffeId) return null;
  if (!identity)
    throw new ClientCertError('NO_IDENTITY_CA', `upstream "${alias}" asks for a client certificate and this enforcer has no identity CA`);
  return (
    identity.cached(spiffeId) ??
    identity.issue(spiffeId).catch((err: Error) => {
      throw new ClientCertError('SVID_NOT_ISSUED', `no client certificate for ${spiffeId}: ${err.message}`);
    })
  );
}
