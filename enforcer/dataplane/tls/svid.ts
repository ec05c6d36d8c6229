// The node's identity CA and the client certificates it issues: when the
// enforcer originates TLS to an upstream that asks for it (lilith.json
// upstreams.*.tls.client_certificate), it presents a certificate for the agent
// whose request it relays, in the X.509-SVID shape: the SPIFFE ID as the one URI
// SAN, not a CA, digitalSignature, clientAuth. The CA is its own pair, apart from
// the interception CA (an upstream trusting agent identities must not thereby
// trust intercepted server names, nor the reverse), kept like it: key 0600 in the
// state dir, never visible to agents. Certificates are short-lived (1 h), one key
// pair per identity, cached and re-issued before they end.
import { webcrypto } from 'node:crypto';
import { join } from 'node:path';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { validateSpiffeId } from '../../../identity/spiffe.js';
import { ALG, CaError, openCaPair, pem, randomSerial } from './ca.js';

export const SVID_CA_KEY_FILE = 'identity-ca-key.pem';
export const SVID_CA_CERT_FILE = 'identity-ca-cert.pem';
export const SVID_VALIDITY_MS = 3_600_000;
const SVID_RENEW_MS = 10 * 60_000;
/** Most identities kept (least recently used dropped first). */
const SVID_CACHE = 1024;

export interface Svid {
  spiffeId: string;
  /** Leaf then the identity CA, PEM. */
  chainPem: string;
  keyPem: string;
  /** Hex serial: tells one issued certificate from the next (context caches key on it). */
  serial: string;
  renewAt: number;
}

export class IdentityCa {
  readonly #caKey: CryptoKey;
  readonly #caCert: x509.X509Certificate;
  readonly #issued = new Map<string, Svid>();
  readonly #issuing = new Map<string, Promise<Svid>>();
  /** The identity CA certificate (public), PEM: what an upstream trusts for client certificates. */
  readonly certPem: string;
  readonly certPath: string;

  private constructor(dir: string, caKey: CryptoKey, caCert: x509.X509Certificate) {
    this.#caKey = caKey;
    this.#caCert = caCert;
    this.certPem = caCert.toString('pem');
    this.certPath = join(dir, SVID_CA_CERT_FILE);
  }

  /** Opens (or makes, or rotates) the identity CA in `dir`, beside the interception CA. */
  static async open(dir: string, opts: { now?: Date } = {}): Promise<IdentityCa> {
    const pair = await openCaPair(dir, { keyFile: SVID_CA_KEY_FILE, certFile: SVID_CA_CERT_FILE, title: 'identity CA' }, opts.now);
    return new IdentityCa(dir, pair.key, pair.cert);
  }

  /** A still-fresh certificate for `spiffeId` without waiting, or null (then `issue`). */
  cached(spiffeId: string): Svid | null {
    const hit = this.#issued.get(spiffeId);
    return hit && hit.renewAt > Date.now() ? hit : null;
  }

  /** The certificate for `spiffeId`: issued on first use, cached, re-issued before it ends. */
  async issue(spiffeId: string): Promise<Svid> {
    const hit = this.cached(spiffeId);
    if (hit) {
      this.#issued.delete(spiffeId);
      this.#issued.set(spiffeId, hit);
      return hit;
    }
    const problem = validateSpiffeId(spiffeId);
    if (problem) throw new CaError('CA_BAD_NAME', `no client certificate is issued for '${spiffeId}': ${problem}`);
    let pending = this.#issuing.get(spiffeId);
    if (!pending) {
      pending = this.#mint(spiffeId).finally(() => this.#issuing.delete(spiffeId));
      this.#issuing.set(spiffeId, pending);
    }
    const svid = await pending;
    this.#issued.delete(spiffeId);
    this.#issued.set(spiffeId, svid);
    if (this.#issued.size > SVID_CACHE) this.#issued.delete(this.#issued.keys().next().value!);
    return svid;
  }

  async #mint(spiffeId: string): Promise<Svid> {
    const now = Date.now();
    const notAfter = new Date(Math.min(now + SVID_VALIDITY_MS, this.#caCert.notAfter.getTime()));
    const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
    const serialNumber = randomSerial();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber,
      // X.509-SVID: the identity is the URI SAN; the subject carries nothing a verifier should use.
      subject: 'O=Lilith agent',
      issuer: this.#caCert.subject,
      notBefore: new Date(now - 5 * 60_000),
      notAfter,
      signingAlgorithm: ALG,
      publicKey: keys.publicKey,
      signingKey: this.#caKey,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }], true),
        await x509.AuthorityKeyIdentifierExtension.create(this.#caCert, false),
      ],
    });
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
    return {
      spiffeId,
      chainPem: `${cert.toString('pem')}\n${this.certPem}`,
      keyPem: pem('PRIVATE KEY', pkcs8),
      serial: serialNumber,
      renewAt: notAfter.getTime() - SVID_RENEW_MS,
    };
  }
}
