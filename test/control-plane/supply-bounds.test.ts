// Issue 16, transport-only attacks against a running `lilith enforcer` (real git
// http-backend, real child process): an attacker who can write to the capsule branch or
// the drop directory but holds no signing key. Each attack must be refused, the active
// capsule must stay, the enforcer must stay up (it activates the next real capsule),
// and its peak RSS (VmHWM of the child) must stay far below the shipped 512 MiB limit.
import assert from 'node:assert/strict';
import { readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { SigningKey } from '../../capsule/index.js';
import { startGitServer, type GitServer } from '../../pipeline/git-http-server.js';
import {
  EnforcerProcess,
  generateSigningKey,
  makeCapsule,
  mkdir,
  Publisher,
  readAudit,
  tempDir,
  writeTrust,
  pollFlags,
  runCli,
  SYNC_ONLY,
} from '../../testkit/control-plane.js';

const FAST_POLL = pollFlags({ timeoutMs: 10_000 });
/** deploy/kubernetes/daemonset.yaml and deploy/systemd: the enforcer's memory limit. */
const DEPLOY_LIMIT_MIB = 512;
/** What these tests allow at peak: the bounds, not the limit, are what is tested. */
const PEAK_BUDGET_MIB = 384;

const execCli = runCli;

async function peakRssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]);
  return kb / 1024;
}

const measured: string[] = [];
after(() => {
  if (measured.length) process.stderr.write(`supply-bounds peak RSS (deploy limit ${DEPLOY_LIMIT_MIB} MiB):\n  ${measured.join('\n  ')}\n`);
});

describe('transport-only attacks on the git branch', () => {
  let srv: GitServer;
  let pub: Publisher;
  let key: SigningKey;
  let dir: string;
  let enf: EnforcerProcess;
  let stateDir: string;
  let watermark = 1;

  before(async () => {
    srv = await startGitServer();
    await srv.createBareRepo('p.git');
    pub = await Publisher.create(srv.repoUrl('p.git'));
    key = generateSigningKey();
    dir = await tempDir('supply-git');
    const trust = await writeTrust(dir, [key]);
    stateDir = join(dir, 'state');
    await pub.publish(await makeCapsule(key, watermark));
    enf = new EnforcerProcess(
      ['--git', srv.repoUrl('p.git'), '--trust', trust, '--state-dir', stateDir, ...FAST_POLL, ...SYNC_ONLY],
      join(dir, 'admin.sock'),
    );
    await enf.waitFor((s) => s.active?.watermark === 1, 'watermark 1 active');
    measured.push(`baseline (sync-only enforcer, capsule active): peak ${(await peakRssMiB(enf.child.pid!)).toFixed(0)} MiB`);
  });
  after(async () => {
    await enf?.kill('SIGKILL');
    await pub?.dispose();
    await srv?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Publishes `bytes`, waits until the source has looked at that commit, then checks the aftermath. */
  async function attack(name: string, bytes: Uint8Array | string, expect: RegExp): Promise<void> {
    const since = new Date().toISOString();
    const commit = await pub.publish(bytes, `attack: ${name}`);
    const st = await enf.waitFor(
      (s) =>
        (s.sync.sources[0].last_commit === commit && expect.test(s.sync.sources[0].last_error ?? '')) ||
        (!!s.last_refusal && s.last_refusal.time >= since && expect.test(`${s.last_refusal.code}: ${s.last_refusal.reason}`)),
      `${name} refused (${expect})`,
      120_000,
    );
    assert.equal(st.active?.watermark, watermark, `${name}: the active capsule is unchanged`);
    const peak = await peakRssMiB(enf.child.pid!);
    measured.push(`${name}: peak ${peak.toFixed(0)} MiB`);
    assert.ok(peak < PEAK_BUDGET_MIB, `${name}: peak RSS ${peak.toFixed(0)} MiB (budget ${PEAK_BUDGET_MIB})`);
    // Still up and still following the branch: the next real capsule is enforced.
    watermark++;
    await pub.publish(await makeCapsule(key, watermark));
    await enf.waitFor((s) => s.active?.watermark === watermark, `${name}: watermark ${watermark} activated afterwards`, 60_000);
  }

  it('memory bomb: 15 MiB of nested arrays is refused from its shape, before JSON.parse', async () => {
    await attack('nested JSON bomb (15 MiB)', '['.repeat(15 * 1024 * 1024), /too_large: envelope nests deeper than 3 levels/);
  });

  it('flat bomb: 5 million empty objects is refused from its container count', async () => {
    await attack(
      'flat JSON bomb (5M objects)',
      `[${'{},'.repeat(5_000_000)}{}]`,
      /too_large: envelope has more than \d+ (objects and arrays|values)/,
    );
  });

  it('compressible capsule: 100 MiB of one byte (≈100 KiB on the wire) is refused from the pack header', async () => {
    const t0 = Date.now();
    await attack(
      'compressible 100 MiB blob',
      Buffer.alloc(100 * 1024 * 1024, 0x20),
      /object \d+ declares 104857600 bytes, over the \d+-byte cap/,
    );
    measured.push(`compressible 100 MiB blob: refused and recovered in ${Date.now() - t0} ms`);
  });

  it('64 junk signatures naming the trusted key: one verification, refused bad_signature', async () => {
    const real = JSON.parse(Buffer.from(await makeCapsule(key, 999)).toString('utf8')) as {
      signatures: { keyid: string; sig: string }[];
    };
    const junk = Buffer.alloc(64, 7).toString('base64');
    real.signatures = Array.from({ length: 64 }, () => ({ keyid: key.keyid, sig: junk }));
    await attack('64 junk signatures', JSON.stringify(real), /bad_signature/);
  });

  it('a refusal never echoes the file: a non-JSON capsule is reported by position only', async () => {
    await attack('secret text as capsule', 'SECRET-TOKEN-abc123 not json', /malformed: envelope is not valid JSON/);
    const st = await enf.status();
    const audit = JSON.stringify(await readAudit(join(stateDir, 'audit.jsonl')));
    for (const where of [JSON.stringify(st), audit, enf.stderr]) assert.doesNotMatch(where, /SECRET-TOKEN/);
    // The refusal history (status keeps the last 20) lists the attacks in order.
    const codes = st!.refusal_history.map((r) => r.code);
    // (the compressible blob never reaches activation: the git source refuses its pack)
    assert.deepEqual(codes.slice(-4), ['too_large', 'too_large', 'bad_signature', 'malformed']);
    // `lilith status --wait --watermark N` for scripts: exit 0 once N is enforced, 1 on timeout.
    const ok = await execCli(['status', '--socket', enf.socket, '--wait', '--watermark', String(watermark), '--timeout', '10']);
    assert.equal(ok.code, 0, ok.stderr);
    const late = await execCli(['status', '--socket', enf.socket, '--wait', '--watermark', '999', '--timeout', '1']);
    assert.equal(late.code, 1);
    assert.match(late.stderr, /not enforcing watermark 999 after 1 s/);
  });
});

describe('the drop directory', () => {
  let dir: string;
  let enf: EnforcerProcess | null = null;
  after(async () => {
    await enf?.kill('SIGKILL');
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('a symlink dropped into the capsule dir is not followed; its target never appears anywhere', async () => {
    dir = await tempDir('supply-dir');
    const key = generateSigningKey();
    const trust = await writeTrust(dir, [key]);
    const drops = join(dir, 'drops');
    await mkdir(drops, { recursive: true });
    await writeFile(join(drops, 'a.json'), await makeCapsule(key, 1));
    const secret = join(dir, 'secret.txt');
    await writeFile(secret, 'ROOT-ONLY-SECRET-42\n', { mode: 0o600 });
    const stateDir = join(dir, 'state');
    enf = new EnforcerProcess(['--capsule-dir', drops, '--trust', trust, '--state-dir', stateDir, ...SYNC_ONLY], join(dir, 'admin.sock'));
    await enf.waitFor((s) => s.active?.watermark === 1, 'watermark 1 active');
    await symlink(secret, join(drops, 'leak.json'));
    const st = await enf.waitFor(
      (s) => /"leak.json": is a symbolic link/.test(s.sync.sources[0].last_error ?? ''),
      'symlink refused',
      30_000,
    );
    assert.equal(st.active?.watermark, 1);
    assert.equal(st.refusals, 0, 'never offered to activation');
    const audit = JSON.stringify(await readAudit(join(stateDir, 'audit.jsonl')));
    for (const where of [JSON.stringify(st), audit, enf.stderr]) assert.doesNotMatch(where, /ROOT-ONLY-SECRET/);
    // Still up: a real capsule dropped next is enforced.
    await writeFile(join(drops, 'b.json'), await makeCapsule(key, 2));
    await enf.waitFor((s) => s.active?.watermark === 2, 'watermark 2 active');
  });
});
