// Ed25519 signing keys and their files. A keyid is the full lowercase hex SHA-256
// of the raw 32-byte public key, so a trust file entry can be checked against
// its own public key and a key cannot be listed under a misleading id.
import { createHash } from 'node:crypto';
import { chmod, mkdir, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { CapsuleError } from './errors.js';

export interface SigningKey {
  keyid: string;
  publicKey: Uint8Array;
  /** tweetnacl 64-byte secret key (seed || public key). */
  secretKey: Uint8Array;
}

/** On-disk secret key file (mode 0600). */
export interface SecretKeyFile {
  type: 'ed25519';
  keyid: string;
  public_key: string;
  /** base64 of the 32-byte seed. */
  secret_key: string;
}

/** On-disk public key file; also the shape of a trust file key entry. */
export interface PublicKeyFile {
  keyid: string;
  public_key: string;
}

export function keyIdOf(publicKey: Uint8Array): string {
  return createHash('sha256').update(publicKey).digest('hex');
}

export function generateSigningKey(): SigningKey {
  const kp = nacl.sign.keyPair();
  return { keyid: keyIdOf(kp.publicKey), publicKey: kp.publicKey, secretKey: kp.secretKey };
}

export function signingKeyFromSeed(seed: Uint8Array): SigningKey {
  if (seed.length !== nacl.sign.seedLength) throw new Error(`an Ed25519 seed is ${nacl.sign.seedLength} bytes, got ${seed.length}`);
  const kp = nacl.sign.keyPair.fromSeed(seed);
  return { keyid: keyIdOf(kp.publicKey), publicKey: kp.publicKey, secretKey: kp.secretKey };
}

export function toSecretKeyFile(key: SigningKey): SecretKeyFile {
  return {
    type: 'ed25519',
    keyid: key.keyid,
    public_key: Buffer.from(key.publicKey).toString('base64'),
    secret_key: Buffer.from(key.secretKey.subarray(0, nacl.sign.seedLength)).toString('base64'),
  };
}

export function toPublicKeyFile(key: { keyid: string; publicKey: Uint8Array }): PublicKeyFile {
  return { keyid: key.keyid, public_key: Buffer.from(key.publicKey).toString('base64') };
}

/** Parses a secret key file and checks that seed, public key and keyid agree. */
export function parseSecretKeyFile(text: string, source = 'key file'): SigningKey {
  let value: Partial<SecretKeyFile>;
  try {
    value = JSON.parse(text) as Partial<SecretKeyFile>;
  } catch (err) {
    throw new Error(`${source}: not valid JSON: ${(err as Error).message}`);
  }
  if (value?.type !== 'ed25519' || typeof value.secret_key !== 'string') {
    throw new Error(`${source}: not a lilith secret key file (expected {type: "ed25519", secret_key, ...})`);
  }
  const seed = new Uint8Array(Buffer.from(value.secret_key, 'base64'));
  if (seed.length !== nacl.sign.seedLength)
    throw new Error(`${source}: secret_key is not a base64 ${nacl.sign.seedLength}-byte Ed25519 seed`);
  const key = signingKeyFromSeed(seed);
  if (value.keyid !== undefined && value.keyid !== key.keyid) throw new Error(`${source}: keyid does not match the secret key`);
  return key;
}

export async function readSigningKey(path: string): Promise<SigningKey> {
  return parseSecretKeyFile(await readFile(path, 'utf8'), path);
}

/** Writes `name.key` (0600, created exclusively: never overwrites a key) and `name.pub` into dir. */
export async function writeKeyFiles(dir: string, key: SigningKey, name = 'lilith'): Promise<{ secretPath: string; publicPath: string }> {
  await mkdir(dir, { recursive: true });
  const secretPath = join(dir, `${name}.key`);
  const publicPath = join(dir, `${name}.pub`);
  const fh = await open(secretPath, 'wx', 0o600);
  try {
    await fh.writeFile(JSON.stringify(toSecretKeyFile(key), null, 2) + '\n');
    await fh.sync();
  } finally {
    await fh.close();
  }
  await chmod(secretPath, 0o600); // umask cannot widen it, but make the mode explicit
  const pub = await open(publicPath, 'w', 0o644);
  try {
    await pub.writeFile(JSON.stringify(toPublicKeyFile(key), null, 2) + '\n');
  } finally {
    await pub.close();
  }
  return { secretPath, publicPath };
}

/** Decodes a base64 Ed25519 public key, refusing anything not exactly 32 bytes. */
export function decodePublicKey(b64: unknown, what: string): Uint8Array {
  if (typeof b64 !== 'string') throw new CapsuleError('bad_trust', `${what}: public_key must be a base64 string`);
  const bytes = new Uint8Array(Buffer.from(b64, 'base64'));
  if (bytes.length !== nacl.sign.publicKeyLength || Buffer.from(bytes).toString('base64') !== b64) {
    throw new CapsuleError('bad_trust', `${what}: public_key is not a base64 32-byte Ed25519 key`);
  }
  return bytes;
}
