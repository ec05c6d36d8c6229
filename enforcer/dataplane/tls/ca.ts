// The node's interception CA: one ECDSA P-256 key pair per enforcer node, kept
// in the state dir (key 0600, directory 0700, never readable by agents), and
// the leaf certificates it mints per TLS server name on demand. Leaves are
// short-lived (24 h), cached per name and re-minted before they expire. All
// leaves share one key pair made at start and held in memory only: minting is
// then one signature, not a key generation, on the handshake path.
//
// X.509 issuing is @peculiar/x509 over Node's webcrypto (Node can verify
// certificates but not issue them); the signatures are Node's own (OpenSSL).
import { createPrivateKey, createPublicKey, webcrypto, X509Certificate } from 'node:crypto';
import { chmod, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import tls from 'node:tls';
// @peculiar/x509 resolves its providers through tsyringe, which needs the Reflect metadata polyfill loaded first (its README's setup).
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
export const DAY_MS = 86_400_000;
/** How long a CA is made for, and how close to its end a start rotates it. */
export const CA_VALIDITY_DAYS = 365;
export const CA_ROTATE_BEFORE_DAYS = 30;
/** Leaf lifetime; a cached leaf is re-minted when less than LEAF_RENEW_MS of it is left. */
export const LEAF_VALIDITY_MS = DAY_MS;
const LEAF_RENEW_MS = 3_600_000;
/** Most leaves kept (least recently used dropped first). */
const LEAF_CACHE = 2048;

export class CaError extends Error {
  constructor(
    readonly code: 'CA_KEY_MODE' | 'CA_MISMATCH' | 'CA_UNREADABLE' | 'CA_BAD_NAME',
    message: string,
  ) {
    super(message);
    this.name = 'CaError';
  }
}

export const CA_KEY_FILE = 'ca-key.pem';
export const CA_CERT_FILE = 'ca-cert.pem';

/** A server name a leaf may be minted for: a DNS name (as SNI carries it) or an IP literal. */
export function isMintableName(name: string): boolean {
  if (net.isIP(name)) return true;
  return name.length > 0 && name.length <= 253 && /^[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*$/.test(name);
}

interface Leaf {
  context: tls.SecureContext;
  pem: string;
  renewAt: number;
}

export class InterceptionCa {
  readonly #caKey: CryptoKey;
  readonly #caCert: x509.X509Certificate;
  readonly #leafKeys: CryptoKeyPair;
  readonly #leafKeyPem: string;
  readonly #leaves = new Map<string, Leaf>();
  readonly #minting = new Map<string, Promise<Leaf>>();
  /** The CA certificate (public), PEM. */
  readonly certPem: string;
  readonly certPath: string;
  readonly keyPath: string;
  /** SHA-256 fingerprint of the CA certificate, colon-separated hex. */
  readonly fingerprint256: string;
  readonly notAfter: Date;

  private constructor(dir: string, caKey: CryptoKey, caCert: x509.X509Certificate, leafKeys: CryptoKeyPair, leafKeyPem: string) {
    this.#caKey = caKey;
    this.#caCert = caCert;
    this.#leafKeys = leafKeys;
    this.#leafKeyPem = leafKeyPem;
    this.certPem = caCert.toString('pem');
    this.certPath = join(dir, CA_CERT_FILE);
    this.keyPath = join(dir, CA_KEY_FILE);
    this.fingerprint256 = new X509Certificate(this.certPem).fingerprint256;
    this.notAfter = caCert.notAfter;
  }

  /**
   * Opens the CA in `dir` (created 0700 if missing), making a new one when there
   * is none or the one there ends within CA_ROTATE_BEFORE_DAYS (the old files
   * are kept as *.prev). A key file readable by anyone but its owner is refused.
   */
  static async open(dir: string, opts: { now?: Date } = {}): Promise<InterceptionCa> {
    const loaded = await openCaPair(dir, { keyFile: CA_KEY_FILE, certFile: CA_CERT_FILE, title: 'interception CA' }, opts.now);
    const leafKeys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', leafKeys.privateKey));
    return new InterceptionCa(dir, loaded.key, loaded.cert, leafKeys, pem('PRIVATE KEY', pkcs8));
  }

  /** The TLS context presenting a leaf for `name` (minted on first use, cached, renewed before it ends). */
  async contextFor(name: string): Promise<tls.SecureContext> {
    return (await this.#leaf(name)).context;
  }

  /** The leaf certificate for `name`, PEM (tests and diagnostics). */
  async leafPem(name: string): Promise<string> {
    return (await this.#leaf(name)).pem;
  }

  async #leaf(raw: string): Promise<Leaf> {
    const name = raw.toLowerCase();
    if (!isMintableName(name)) throw new CaError('CA_BAD_NAME', `no certificate is minted for '${raw}'`);
    const hit = this.#leaves.get(name);
    if (hit && hit.renewAt > Date.now()) {
      this.#leaves.delete(name);
      this.#leaves.set(name, hit);
      return hit;
    }
    let pending = this.#minting.get(name);
    if (!pending) {
      pending = this.#mint(name).finally(() => this.#minting.delete(name));
      this.#minting.set(name, pending);
    }
    const leaf = await pending;
    this.#leaves.delete(name);
    this.#leaves.set(name, leaf);
    if (this.#leaves.size > LEAF_CACHE) this.#leaves.delete(this.#leaves.keys().next().value!);
    return leaf;
  }

  async #mint(name: string): Promise<Leaf> {
    const now = Date.now();
    // A few minutes back for clients whose clocks run behind; never past the CA's own end.
    const notBefore = new Date(now - 5 * 60_000);
    const notAfter = new Date(Math.min(now + LEAF_VALIDITY_MS, this.#caCert.notAfter.getTime()));
    const ip = net.isIP(name);
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: ip ? 'CN=lilith-intercepted' : `CN=${name}`,
      issuer: this.#caCert.subject,
      notBefore,
      notAfter,
      signingAlgorithm: ALG,
      publicKey: this.#leafKeys.publicKey,
      signingKey: this.#caKey,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension([ip ? { type: 'ip', value: name } : { type: 'dns', value: name }]),
        await x509.AuthorityKeyIdentifierExtension.create(this.#caCert, false),
      ],
    });
    const certPem = cert.toString('pem');
    const context = tls.createSecureContext({ key: this.#leafKeyPem, cert: `${certPem}\n${this.certPem}` });
    return { context, pem: certPem, renewAt: notAfter.getTime() - LEAF_RENEW_MS };
  }
}

/** Which files a CA pair lives in, and what its subject calls it. */
export interface CaFiles {
  keyFile: string;
  certFile: string;
  /** "interception CA", "identity CA": in the subject and in errors. */
  title: string;
}

/**
 * Opens a CA pair in `dir` (created 0700 if missing), making a new one when there
 * is none or the one there ends within CA_ROTATE_BEFORE_DAYS (the old files are
 * kept as *.prev). A key file readable by anyone but its owner is refused.
 */
export async function openCaPair(dir: string, files: CaFiles, at?: Date): Promise<{ key: CryptoKey; cert: x509.X509Certificate }> {
  const now = at ?? new Date();
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const keyPath = join(dir, files.keyFile);
  const certPath = join(dir, files.certFile);
  const keyStat = await stat(keyPath).catch(() => null);
  if (keyStat) {
    if ((keyStat.mode & 0o077) !== 0)
      throw new CaError('CA_KEY_MODE', `${keyPath} is mode ${(keyStat.mode & 0o777).toString(8)}: the ${files.title} key must be 0600`);
    const loaded = await loadPair(keyPath, certPath, files.title);
    if (loaded.cert.notAfter.getTime() - now.getTime() >= CA_ROTATE_BEFORE_DAYS * DAY_MS) return loaded;
    await rename(keyPath, `${keyPath}.prev`);
    await rename(certPath, `${certPath}.prev`).catch(() => undefined);
  }
  return createPair(keyPath, certPath, now, files.title);
}

async function loadPair(keyPath: string, certPath: string, title: string): Promise<{ key: CryptoKey; cert: x509.X509Certificate }> {
  let keyPem: string;
  let certPem: string;
  try {
    [keyPem, certPem] = await Promise.all([readFile(keyPath, 'utf8'), readFile(certPath, 'utf8')]);
  } catch (err) {
    throw new CaError('CA_UNREADABLE', `${title} in ${keyPath}/${certPath}: ${(err as Error).message}`);
  }
  let der: Buffer;
  let cert: x509.X509Certificate;
  try {
    der = createPrivateKey(keyPem).export({ format: 'der', type: 'pkcs8' });
    cert = new x509.X509Certificate(certPem);
  } catch (err) {
    throw new CaError('CA_UNREADABLE', `${title} in ${keyPath}/${certPath}: ${(err as Error).message}`);
  }
  const a = createPublicKey(keyPem).export({ format: 'der', type: 'spki' });
  const b = createPublicKey(certPem).export({ format: 'der', type: 'spki' });
  if (!a.equals(b)) throw new CaError('CA_MISMATCH', `${certPath} does not belong to the key in ${keyPath}`);
  const key = await webcrypto.subtle.importKey('pkcs8', der, ALG, false, ['sign']);
  return { key, cert };
}

async function createPair(
  keyPath: string,
  certPath: string,
  now: Date,
  title: string,
): Promise<{ key: CryptoKey; cert: x509.X509Certificate }> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const name = `CN=Lilith ${title} (${hostname().replace(/[,=+<>#;"\\]/g, '_')} ${now.toISOString().slice(0, 10)}), O=Lilith`;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name,
    notBefore: new Date(now.getTime() - 5 * 60_000),
    notAfter: new Date(now.getTime() + CA_VALIDITY_DAYS * DAY_MS),
    signingAlgorithm: ALG,
    keys,
    extensions: [
      // pathlen 0: the CA signs leaves only, never another CA.
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  // Written under a temp name with its final mode, then renamed: never a moment at a looser mode.
  await writeFile(`${keyPath}.tmp`, pem('PRIVATE KEY', pkcs8), { mode: 0o600 });
  await chmod(`${keyPath}.tmp`, 0o600);
  await writeFile(`${certPath}.tmp`, cert.toString('pem'), { mode: 0o644 });
  await rename(`${certPath}.tmp`, certPath);
  await rename(`${keyPath}.tmp`, keyPath);
  const key = await webcrypto.subtle.importKey('pkcs8', pkcs8, ALG, false, ['sign']);
  return { key, cert };
}

export function pem(label: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END ${label}-----\n`;
}

export function randomSerial(): string {
  const b = webcrypto.getRandomValues(new Uint8Array(16));
  b[0] &= 0x7f; // positive
  b[0] |= 0x01; // no leading zero byte to strip
  return Buffer.from(b).toString('hex');
}
