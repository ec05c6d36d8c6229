// `lilith trust`: build and rotate k-of-n trust files (format 2: root, capsule and
// timestamp roles, a version) without hand-editing JSON, and sign rotations.
import { readFile, stat, writeFile } from 'node:fs/promises';
import { parseCommandArgs, runCommand, UsageError } from '../args.js';
import {
  addSignatures,
  CapsuleError,
  decodeEnvelope,
  keyIdOf,
  parseSecretKeyFile,
  parseTrust,
  readSigningKey,
  signTrustUpdate,
  TRUST_FORMAT_V2,
  TRUST_PAYLOAD_TYPE,
  envelopeTypeOf,
  type SigningKey,
  type Trust,
} from '../../capsule/index.js';
import { checkSignatures } from '../../capsule/envelope.js';
import { decodePublicKey } from '../../capsule/keys.js';
import { publicKeyProblem } from '../../capsule/ed25519-point.js';
import type { TrustFileV2 } from '../../capsule/trust.js';
import { parseDuration } from '../../pipeline/capsule-build.js';

export const summary = 'build, change, sign and show k-of-n trust files (roles, rotation)';

export const usage = `usage: lilith trust init --out FILE --root KEY... --capsule KEY... [--timestamp KEY...]
                         [--root-threshold K] [--capsule-threshold K] [--timestamp-threshold K]
                         [--stale-after 1h] [--fail-after 1d] [--expires 365d] [--max-validity 90d]
       lilith trust add-key TRUST --role ROLE --key KEY [--threshold K] --out NEW
                         [--stale-after D --fail-after D   (adding the first timestamp key)]
       lilith trust remove-key TRUST --role ROLE (--key KEY | --keyid ID) [--threshold K] --out NEW
       lilith trust sign NEW --key SECRET [--key SECRET ...] --out ROTATION [--current TRUST]
       lilith trust show FILE [--json]

KEY is a public key file (NAME.pub from lilith keygen) or a secret key file (only its
public half is used); repeat --root/--capsule/--timestamp for several keys. ROLE is
root, capsule or timestamp. Thresholds default to 1 (a k-of-n role: give K).

init       writes a new format-2 trust file, version 1 (never overwrites FILE).
add-key,   write the next version of TRUST to NEW (version + 1; a legacy file becomes
remove-key format 2 with every key in the root and capsule roles). Nothing is trusted
           until the rotation is signed and published (or the file is installed by hand).
sign       signs NEW as a rotation envelope: it must carry k signatures of the CURRENT
           root role and k of NEW's root role. If ROTATION exists and holds NEW, the
           signatures are added to it, so each key holder can sign in turn.
           --current reports how many of the current root threshold are met.
           Publish it with: lilith publish ROTATION --repo URL --trust CURRENT.
show       prints the version, roles, keys and expiry of a trust file or rotation.
Timestamp role: --stale-after (status and metrics show STALE) and --fail-after
(every decision is denied) bound how old the freshest timestamp may be.
Exit status: 0 done, 1 refused (the result would not be a valid trust file), 2 usage or I/O error.
`;

interface PubKey {
  keyid: string;
  publicKey: Uint8Array;
}

async function readPublicKey(path: string): Promise<PubKey> {
  const text = await readFile(path, 'utf8');
  let v: { keyid?: unknown; public_key?: unknown; secret_key?: unknown };
  try {
    v = JSON.parse(text) as typeof v;
  } catch {
    throw new UsageError(`${path}: not a key file (JSON expected)`);
  }
  if (typeof v.secret_key === 'string') return parseSecretKeyFile(text, path);
  const publicKey = decodePublicKey(v.public_key, path);
  const problem = publicKeyProblem(publicKey);
  if (problem) throw new UsageError(`${path}: public_key ${problem}`);
  if (v.keyid !== undefined && v.keyid !== keyIdOf(publicKey)) throw new UsageError(`${path}: keyid is not the sha256 of its public_key`);
  return { keyid: keyIdOf(publicKey), publicKey };
}

function seconds(text: string | undefined, what: string): number | undefined {
  if (text === undefined) return undefined;
  const ms = parseDuration(text);
  if (ms === null || ms % 1000) throw new UsageError(`${what}: "${text}" is not a duration like 90s, 30m, 1h, 7d`);
  return ms / 1000;
}

function threshold(text: string | undefined, what: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text)) throw new UsageError(`${what} must be a positive integer`);
  return Number(text);
}

/** The format-2 file form of a parsed trust (a legacy file: every key holds root and capsule). */
function asV2(t: Trust): TrustFileV2 {
  if (!t.legacy) return structuredClone(t.file as TrustFileV2);
  const keyids = [...t.keys.keys()];
  return {
    format: TRUST_FORMAT_V2,
    version: 1,
    keys: (t.file as { keys: TrustFileV2['keys'] }).keys,
    roles: { root: { threshold: t.threshold, keyids }, capsule: { threshold: t.threshold, keyids: [...keyids] } },
    ...(t.expiresAt ? { expires_at: t.expiresAt.toISOString() } : {}),
    max_validity_s: t.maxValidityMs / 1000,
  };
}

/** Drops keys no role uses, checks the result as enforcers would, and writes it. */
async function writeChecked(file: TrustFileV2, out: string, exclusive: boolean): Promise<Trust> {
  const used = new Set([...file.roles.root.keyids, ...file.roles.capsule.keyids, ...(file.roles.timestamp?.keyids ?? [])]);
  file.keys = file.keys.filter((k) => used.has(k.keyid));
  const trust = parseTrust(Buffer.from(JSON.stringify(file)), out);
  await writeFile(out, JSON.stringify(file, null, 2) + '\n', { flag: exclusive ? 'wx' : 'w' });
  return trust;
}

function describe(t: Trust): string {
  const role = (name: string, r: { threshold: number; keys: ReadonlyMap<string, Uint8Array> } | null, extra = '') =>
    r ? `  ${name.padEnd(9)} ${r.threshold} of ${r.keys.size}${extra}: ${[...r.keys.keys()].join(', ')}` : `  ${name.padEnd(9)} none`;
  const ts = t.roles.timestamp;
  return [
    `trust ${t.legacy ? 'legacy format (every key holds root and capsule)' : TRUST_FORMAT_V2}, version ${t.version}`,
    role('root', t.roles.root),
    role('capsule', t.roles.capsule),
    role('timestamp', ts, ts ? ` (stale after ${ts.staleAfterMs / 1000}s, fail closed after ${ts.failAfterMs / 1000}s)` : ''),
    `  expires   ${t.expiresAt?.toISOString() ?? 'never'}`,
    `  max capsule validity ${t.maxValidityMs / 86_400_000} days`,
  ].join('\n');
}

async function init(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(
    argv,
    {
      out: { type: 'string' },
      root: { type: 'string', multiple: true },
      capsule: { type: 'string', multiple: true },
      timestamp: { type: 'string', multiple: true },
      'root-threshold': { type: 'string' },
      'capsule-threshold': { type: 'string' },
      'timestamp-threshold': { type: 'string' },
      'stale-after': { type: 'string' },
      'fail-after': { type: 'string' },
      expires: { type: 'string' },
      'max-validity': { type: 'string' },
    },
    usage,
  );
  if (positionals.length || !values.out || !values.root?.length || !values.capsule?.length)
    throw new UsageError(`trust init needs --out, --root and --capsule\n\n${usage.trimEnd()}`);
  const keys = new Map<string, string>();
  const role = async (paths: string[], k: string | undefined, what: string) => {
    const ids: string[] = [];
    for (const p of paths) {
      const key = await readPublicKey(p);
      keys.set(key.keyid, Buffer.from(key.publicKey).toString('base64'));
      ids.push(key.keyid);
    }
    return { threshold: threshold(k, `--${what}-threshold`) ?? 1, keyids: ids };
  };
  const file: TrustFileV2 = {
    format: TRUST_FORMAT_V2,
    version: 1,
    keys: [],
    roles: {
      root: await role(values.root, values['root-threshold'], 'root'),
      capsule: await role(values.capsule, values['capsule-threshold'], 'capsule'),
    },
  };
  if (values.timestamp?.length) {
    const stale = seconds(values['stale-after'] ?? '1h', '--stale-after')!;
    const fail = seconds(values['fail-after'] ?? '1d', '--fail-after')!;
    file.roles.timestamp = {
      ...(await role(values.timestamp, values['timestamp-threshold'], 'timestamp')),
      stale_after_s: stale,
      fail_after_s: fail,
    };
  }
  file.keys = [...keys].map(([keyid, public_key]) => ({ keyid, public_key }));
  const expires = values.expires === undefined ? null : parseDuration(values.expires);
  if (values.expires !== undefined && expires === null) throw new UsageError(`--expires: "${values.expires}" is not a duration`);
  if (expires) file.expires_at = new Date(Date.now() + expires).toISOString();
  const maxValidity = seconds(values['max-validity'], '--max-validity');
  if (maxValidity) file.max_validity_s = maxValidity;
  const trust = await writeChecked(file, values.out, true);
  process.stdout.write(`wrote ${values.out}\n${describe(trust)}\n`);
  return 0;
}

function roleName(text: string | undefined): 'root' | 'capsule' | 'timestamp' {
  if (text !== 'root' && text !== 'capsule' && text !== 'timestamp') throw new UsageError('--role must be root, capsule or timestamp');
  return text;
}

async function changeKey(argv: string[], adding: boolean): Promise<number> {
  const { values, positionals } = parseCommandArgs(
    argv,
    {
      role: { type: 'string' },
      key: { type: 'string' },
      keyid: { type: 'string' },
      threshold: { type: 'string' },
      out: { type: 'string' },
      'stale-after': { type: 'string' },
      'fail-after': { type: 'string' },
    },
    usage,
  );
  if (positionals.length !== 1 || !values.out || (!values.key && !(values.keyid && !adding)))
    throw new UsageError(
      `trust ${adding ? 'add-key' : 'remove-key'} needs TRUST, --role, ${adding ? '--key' : '--key or --keyid'} and --out\n\n${usage.trimEnd()}`,
    );
  const name = roleName(values.role);
  const current = parseTrust(await readFile(positionals[0]), positionals[0]);
  const file = asV2(current);
  file.version = current.version + 1;
  const k = threshold(values.threshold, '--threshold');
  if (adding) {
    const key = await readPublicKey(values.key!);
    if (!file.keys.some((e) => e.keyid === key.keyid))
      file.keys.push({ keyid: key.keyid, public_key: Buffer.from(key.publicKey).toString('base64') });
    let r = file.roles[name];
    if (!r) {
      if (name !== 'timestamp') throw new Error('unreachable');
      r = file.roles.timestamp = {
        threshold: 1,
        keyids: [],
        stale_after_s: seconds(values['stale-after'] ?? '1h', '--stale-after')!,
        fail_after_s: seconds(values['fail-after'] ?? '1d', '--fail-after')!,
      };
    }
    if (r.keyids.includes(key.keyid)) throw new UsageError(`key ${key.keyid} already holds the ${name} role`);
    r.keyids.push(key.keyid);
    if (k !== undefined) r.threshold = k;
  } else {
    const keyid = values.keyid ?? (await readPublicKey(values.key!)).keyid;
    const r = file.roles[name];
    if (!r?.keyids.includes(keyid)) throw new UsageError(`key ${keyid} does not hold the ${name} role`);
    r.keyids = r.keyids.filter((id) => id !== keyid);
    if (r.keyids.length === 0) {
      if (name !== 'timestamp') throw new UsageError(`the ${name} role cannot be left without keys`);
      delete file.roles.timestamp;
    } else r.threshold = k ?? Math.min(r.threshold, r.keyids.length);
  }
  if (values['stale-after'] && file.roles.timestamp) file.roles.timestamp.stale_after_s = seconds(values['stale-after'], '--stale-after')!;
  if (values['fail-after'] && file.roles.timestamp) file.roles.timestamp.fail_after_s = seconds(values['fail-after'], '--fail-after')!;
  const next = await writeChecked(file, values.out, false);
  process.stdout.write(
    `wrote ${values.out} (version ${next.version}, unsigned: sign the rotation with lilith trust sign ${values.out} --key ... by ${current.roles.root.threshold} current and ${next.roles.root.threshold} new root key(s))\n${describe(next)}\n`,
  );
  return 0;
}

async function sign(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(
    argv,
    { key: { type: 'string', multiple: true }, out: { type: 'string' }, current: { type: 'string' } },
    usage,
  );
  if (positionals.length !== 1 || !values.key?.length || !values.out)
    throw new UsageError(`trust sign needs NEW, --key and --out\n\n${usage.trimEnd()}`);
  const next = parseTrust(await readFile(positionals[0]), positionals[0]);
  const keys: SigningKey[] = [];
  for (const p of values.key) {
    keys.push(await readSigningKey(p));
    if ((await stat(p)).mode & 0o077) process.stderr.write(`lilith trust: warning: ${p} is readable by others (chmod 600 it)\n`);
  }
  const fresh = signTrustUpdate(next.file, keys);
  const existing = await readFile(values.out).catch(() => null);
  let bytes = fresh;
  if (existing) {
    if (envelopeTypeOf(existing) !== TRUST_PAYLOAD_TYPE)
      throw new UsageError(`${values.out} exists and is not a trust rotation; refusing to overwrite it`);
    const same =
      Buffer.compare(
        Buffer.from(decodeEnvelope(existing, TRUST_PAYLOAD_TYPE).payloadBytes),
        Buffer.from(decodeEnvelope(fresh, TRUST_PAYLOAD_TYPE).payloadBytes),
      ) === 0;
    if (!same) throw new UsageError(`${values.out} holds a rotation of different content; refusing to mix signatures`);
    bytes = addSignatures(existing, TRUST_PAYLOAD_TYPE, keys);
  }
  await writeFile(values.out, bytes);
  const env = decodeEnvelope(bytes, TRUST_PAYLOAD_TYPE);
  const count = (r: { threshold: number; keys: ReadonlyMap<string, Uint8Array> }) =>
    `${checkSignatures(env, r.keys).valid.length} of ${r.threshold}`;
  let line = `signed rotation to version ${next.version} in ${values.out} (${env.signatures.length} signature(s)); new root role: ${count(next.roles.root)} required`;
  if (values.current) {
    const current = parseTrust(await readFile(values.current), values.current);
    line += `; current root role (version ${current.version}): ${count(current.roles.root)} required`;
    if (next.version <= current.version)
      line += ` — WARNING: version ${next.version} is not above ${current.version}, enforcers will ignore it`;
  }
  process.stdout.write(line + '\n');
  return 0;
}

async function show(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, { json: { type: 'boolean' } }, usage);
  if (positionals.length !== 1) throw new UsageError(usage.trimEnd());
  const bytes = await readFile(positionals[0]);
  const isRotation = envelopeTypeOf(bytes) === TRUST_PAYLOAD_TYPE;
  const env = isRotation ? decodeEnvelope(bytes, TRUST_PAYLOAD_TYPE) : null;
  const trust = parseTrust(env ? env.payloadBytes : bytes, positionals[0]);
  if (values.json) {
    process.stdout.write(
      JSON.stringify({ rotation: isRotation, signers: env?.signatures.map((s) => s.keyid) ?? [], trust: trust.file }, null, 2) + '\n',
    );
    return 0;
  }
  process.stdout.write(
    `${isRotation ? `rotation envelope signed by ${env!.signatures.map((s) => s.keyid.slice(0, 16)).join(', ')} (signatures not checked here: see lilith trust sign --current)\n` : ''}${describe(trust)}\n`,
  );
  return 0;
}

export async function run(argv: string[]): Promise<number> {
  return runCommand(async () => {
    try {
      return await dispatch(argv);
    } catch (err) {
      if (!(err instanceof CapsuleError)) throw err;
      process.stderr.write(`lilith trust: refused (${err.code}): ${err.message}\n`);
      return 1;
    }
  });
}

async function dispatch(argv: string[]): Promise<number> {
  {
    const [sub, ...rest] = argv;
    switch (sub) {
      case 'init':
        return init(rest);
      case 'add-key':
        return changeKey(rest, true);
      case 'remove-key':
        return changeKey(rest, false);
      case 'sign':
        return sign(rest);
      case 'show':
        return show(rest);
      default:
        throw new UsageError(usage.trimEnd());
    }
  }
}
