// `lilith state`: the anti-rollback state an enforcer keeps (the watermark floor), and
// the one way to lower it: a root-signed reset, after a fast-forward.
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseCommandArgs, runCommand, UsageError } from '../args.js';
import { CapsuleError, readSigningKey, readState, signReset, type SigningKey } from '../../capsule/index.js';
import { writeFileAtomic } from '../../capsule/atomic-file.js';
import { adminGet, adminPost, DEFAULT_ADMIN_SOCKET } from '../../enforcer/client/index.js';
import type { DaemonStatus } from '../../enforcer/daemon/index.js';

export const summary = 'show the anti-rollback state; sign and apply a root-signed watermark reset';

export const usage = `usage: lilith state show [--socket PATH | --state-dir DIR] [--json]
       lilith state sign-reset --key ROOT_SECRET [--key ...] --undoes DIGEST --watermark N --digest DIGEST
                               --trust-version V [--reason TEXT] --out FILE
       lilith state reset --from FILE [--socket PATH]

show        the watermark floor, the digest it belongs to, a reset's not_before, and the
            trust version in use: from the running enforcer (--socket, default
            $LILITH_ADMIN_SOCKET or ${DEFAULT_ADMIN_SOCKET}) or from a state directory.
sign-reset  signs a reset with k root keys: it applies only to an enforcer whose state
            holds the capsule with payload digest --undoes (the fast-forwarded one), and
            lowers its floor to --watermark/--digest (the last good capsule). Capsules
            created before the reset (now) are refused from then on, so publish a new
            capsule (watermark N+1, signed after the reset) with it.
reset       hands a signed reset to the running enforcer over its admin socket. It is
            verified there against the root role of the trust in use and audited.
            Alternatively publish it on the capsule branch (lilith publish FILE --repo),
            where every enforcer applies it on its next sync.
Exit status: 0 done, 1 refused (the reset does not verify or apply), 2 usage, I/O or
the enforcer cannot be reached.
`;

const HEX64 = /^[0-9a-f]{64}$/;

function socketOf(v: string | undefined): string {
  return v ?? process.env.LILITH_ADMIN_SOCKET ?? DEFAULT_ADMIN_SOCKET;
}

async function show(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(
    argv,
    { socket: { type: 'string' }, 'state-dir': { type: 'string' }, json: { type: 'boolean' } },
    usage,
  );
  if (positionals.length) throw new UsageError(usage.trimEnd());
  let view: { state: unknown; trust_version: number | null; source: string };
  if (values['state-dir']) {
    const dir = values['state-dir'];
    const state = await readState(dir);
    const rotated = await readFile(join(dir, 'trust-rotated.json'), 'utf8').catch(() => null);
    let version: number | null = null;
    try {
      version = rotated ? ((JSON.parse(rotated) as { version?: number }).version ?? null) : null;
    } catch {
      version = null;
    }
    view = { state, trust_version: version, source: `state directory ${dir}${version === null ? '' : ' (rotated trust)'}` };
  } else {
    const socket = socketOf(values.socket);
    let body: string;
    try {
      const res = await adminGet(socket, '/status');
      if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
      body = res.body;
    } catch (err) {
      process.stderr.write(`lilith state: cannot reach the enforcer on ${socket}: ${(err as Error).message}\n`);
      return 2;
    }
    const st = JSON.parse(body) as DaemonStatus;
    view = { state: st.state, trust_version: st.trust?.version ?? null, source: `enforcer pid ${st.pid}` };
  }
  if (values.json) {
    process.stdout.write(JSON.stringify(view, null, 2) + '\n');
    return 0;
  }
  const s = view.state as { watermark: number; digest: string; accepted_at: string; not_before?: string; reset?: string } | null;
  const lines = [`anti-rollback state (${view.source}):`];
  if (!s) lines.push('  none yet (the next capsule accepted becomes the floor)');
  else {
    lines.push(`  watermark    ${s.watermark}`, `  digest       ${s.digest}`, `  accepted at  ${s.accepted_at}`);
    if (s.not_before) lines.push(`  not before   ${s.not_before} (set by root-signed reset ${s.reset?.slice(0, 16) ?? '?'}…)`);
  }
  if (view.trust_version !== null) lines.push(`  trust        version ${view.trust_version}`);
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}

async function signResetCmd(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(
    argv,
    {
      key: { type: 'string', multiple: true },
      undoes: { type: 'string' },
      watermark: { type: 'string' },
      digest: { type: 'string' },
      'trust-version': { type: 'string' },
      reason: { type: 'string' },
      out: { type: 'string' },
    },
    usage,
  );
  if (
    positionals.length ||
    !values.key?.length ||
    !values.undoes ||
    !values.watermark ||
    !values.digest ||
    !values['trust-version'] ||
    !values.out
  )
    throw new UsageError(`state sign-reset needs --key, --undoes, --watermark, --digest, --trust-version and --out\n\n${usage.trimEnd()}`);
  if (!HEX64.test(values.undoes) || !HEX64.test(values.digest))
    throw new UsageError('--undoes and --digest must be sha256 hex payload digests');
  if (!/^\d+$/.test(values.watermark) || !/^\d+$/.test(values['trust-version']))
    throw new UsageError('--watermark and --trust-version must be integers');
  const keys: SigningKey[] = [];
  for (const p of values.key) {
    keys.push(await readSigningKey(p));
    if ((await stat(p)).mode & 0o077) process.stderr.write(`lilith state: warning: ${p} is readable by others (chmod 600 it)\n`);
  }
  const issuedAt = new Date().toISOString();
  const bytes = signReset(
    {
      undoes_digest: values.undoes,
      watermark: Number(values.watermark),
      digest: values.digest,
      trust_version: Number(values['trust-version']),
      issued_at: issuedAt,
      ...(values.reason ? { reason: values.reason } : {}),
    },
    keys,
  );
  await writeFileAtomic(values.out, bytes);
  process.stdout.write(
    `signed reset ${values.out}: undoes ${values.undoes.slice(0, 16)}…, floor to watermark ${values.watermark}; capsules created before ${issuedAt} will be refused\n`,
  );
  return 0;
}

async function reset(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, { from: { type: 'string' }, socket: { type: 'string' } }, usage);
  if (positionals.length || !values.from) throw new UsageError(`state reset needs --from FILE\n\n${usage.trimEnd()}`);
  const bytes = await readFile(values.from);
  if (bytes.length > 64 * 1024) throw new UsageError(`${values.from} is larger than a reset can be`);
  let body: unknown;
  try {
    body = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new UsageError(`${values.from} is not JSON (expected the reset envelope from lilith state sign-reset)`);
  }
  const socket = socketOf(values.socket);
  let res: { status: number; body: string };
  try {
    res = await adminPost(socket, '/v1/state/reset', body, 30_000);
  } catch (err) {
    process.stderr.write(`lilith state: cannot reach the enforcer on ${socket}: ${(err as Error).message}\n`);
    return 2;
  }
  const reply = JSON.parse(res.body) as { error?: string; state?: { watermark: number; not_before?: string } };
  if (res.status !== 200) {
    process.stderr.write(`lilith state: reset refused: ${reply.error ?? res.body}\n`);
    return res.status === 409 ? 1 : 2;
  }
  process.stdout.write(`reset applied: watermark floor ${reply.state?.watermark}, not before ${reply.state?.not_before}\n`);
  return 0;
}

export async function run(argv: string[]): Promise<number> {
  return runCommand(async () => {
    const [sub, ...rest] = argv;
    try {
      if (sub === 'show') return await show(rest);
      if (sub === 'sign-reset') return await signResetCmd(rest);
      if (sub === 'reset') return await reset(rest);
    } catch (err) {
      if (!(err instanceof CapsuleError)) throw err;
      process.stderr.write(`lilith state: refused (${err.code}): ${err.message}\n`);
      return 1;
    }
    throw new UsageError(usage.trimEnd());
  });
}
