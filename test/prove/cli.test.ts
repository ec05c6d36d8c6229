// `lilith prove` end to end: a real temporary git repository, policies read at
// refs with isomorphic-git, exit codes, output formats, and the exact commands
// the CI workflows run.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { BUNDLED } from './fixtures.js';

const exec = promisify(execFile);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const LILITH = join(ROOT, 'bin/lilith.js');

let repo: string;
let cleanCommit: string;

async function git(...args: string[]) {
  return (await exec('git', args, { cwd: repo })).stdout.trim();
}

async function lilith(args: string[], cwd = repo): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec(process.execPath, [LILITH, ...args], { cwd, maxBuffer: 16 << 20 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

before(async () => {
  repo = mkdtempSync(join(tmpdir(), 'lilith-prove-git-'));
  await git('init', '-q', '-b', 'main');
  await git('config', 'user.email', 't@example.com');
  await git('config', 'user.name', 'test');
  cpSync(BUNDLED, join(repo, 'policies'), { recursive: true });
  await git('add', '.');
  await git('commit', '-q', '-m', 'policies');
  cleanCommit = await git('rev-parse', 'HEAD');
  // What actions/checkout leaves behind for the base branch of a pull request.
  await git('update-ref', 'refs/remotes/origin/main', cleanCommit);
  await git('checkout', '-q', '-b', 'widen');
  const egress = join(repo, 'policies/egress.cedar');
  writeFileSync(
    egress,
    readFileSync(egress, 'utf8').replace('context.protocol == "tls" && context.port == 443', 'context.protocol == "tls"'),
  );
  await git('commit', '-q', '-am', 'TLS on any port');
});

after(() => rmSync(repo, { recursive: true, force: true }));

test('same ref twice: proven, exit 0', async () => {
  const r = await lilith(['prove', '--base', 'main', '--head', 'main']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /PROVEN/);
  assert.match(r.stdout, /report sha256: [0-9a-f]{64}/);
});

test('escalation between branches: exit 1 with a counterexample; HEAD~1 and short ids resolve', async () => {
  const r = await lilith(['prove', '--base', 'main', '--head', 'widen']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stdout, /ESCALATION/);
  assert.match(r.stdout, /escalation in Agent, Action::"connect", Host/);
  assert.match(r.stdout, /re-checked with cedar-wasm: head allows \(tls-allowlisted\), base denies/);
  const r2 = await lilith(['prove', '--base', 'HEAD~1', '--head', 'HEAD', '--format', 'json']);
  assert.equal(r2.code, 1);
  const rep = JSON.parse(r2.stdout);
  assert.equal(rep.verdict, 'escalation');
  assert.equal(rep.base.commit, cleanCommit);
  const r3 = await lilith(['prove', '--base', cleanCommit.slice(0, 8), '--head', 'widen', '--format', 'json']);
  assert.equal(JSON.parse(r3.stdout).base.commit, cleanCommit);
});

test('--out writes the stable JSON report; --approve turns the escalation into exit 0', async () => {
  const out1 = join(repo, '..', `${Date.now()}-a.json`);
  const out2 = join(repo, '..', `${Date.now()}-b.json`);
  try {
    await lilith(['prove', '--base', 'main', '--head', 'widen', '--out', out1]);
    await lilith(['prove', '--base', 'main', '--head', 'widen', '--out', out2, '--format', 'markdown']);
    assert.equal(readFileSync(out1, 'utf8'), readFileSync(out2, 'utf8'), 'the report does not depend on the output format or the run');
    const approved = await lilith(['prove', '--base', 'main', '--head', 'widen', '--approve', 'connect:SEC-42 any TLS port']);
    assert.equal(approved.code, 0, approved.stderr);
    assert.match(approved.stdout, /approved escalation in Agent, Action::"connect", Host — SEC-42 any TLS port/);
  } finally {
    rmSync(out1, { force: true });
    rmSync(out2, { force: true });
  }
});

test('errors exit 2 with a clear message: unknown ref, missing policy dir, bad flags', async () => {
  const bad = await lilith(['prove', '--base', 'no-such-branch', '--head', 'HEAD']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /cannot resolve git ref "no-such-branch"/);
  const noDir = await lilith(['prove', '--base', 'main', '--head', 'main', '--policies-path', 'nope']);
  assert.equal(noDir.code, 2);
  assert.match(noDir.stderr, /no directory "nope"/);
  const usage = await lilith(['prove', '--base', 'main']);
  assert.equal(usage.code, 2);
  const md = await lilith(['prove', '--base', 'no-such-branch', '--head', 'HEAD', '--format', 'markdown']);
  assert.equal(md.code, 2);
  assert.match(md.stdout, /Lilith policy proof: error/);
});

test('--base-dir/--head-dir compares directories', async () => {
  const r = await lilith(['prove', '--base-dir', BUNDLED, '--head-dir', join(repo, 'policies')]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /tls-allowlisted/);
});

// ---- the CI workflows -------------------------------------------------------

function workflow(name: string): {
  on: Record<string, unknown>;
  jobs: Record<string, { steps: { run?: string; uses?: string; with?: Record<string, unknown>; id?: string }[] }>;
} {
  return parse(readFileSync(join(ROOT, '.github/workflows', name), 'utf8'));
}

function dispatcherCommands(): string[] {
  const main = readFileSync(join(ROOT, 'cli/main.ts'), 'utf8');
  const block = /const COMMANDS[^{]*\{([^}]*)\}/.exec(main)![1];
  return [...block.matchAll(/^\s*(\w+):/gm)].map((m) => m[1]);
}

function lilithInvocations(run: string): string[][] {
  const out: string[][] = [];
  for (const line of run.split('\n')) {
    // GitHub expressions substituted as on a pull request against main.
    const m = /node bin\/lilith\.js (.*)$/.exec(line.trim().replace(/\$\{\{\s*github\.base_ref\s*\}\}/g, 'main'));
    if (m) out.push(m[1].replace(/"/g, '').split(/\s+/));
  }
  return out;
}

for (const file of ['policy-gate.yml', 'release.yml']) {
  test(`${file}: parses, and every lilith command and npm script it calls exists`, () => {
    const wf = workflow(file);
    const steps = Object.values(wf.jobs).flatMap((j) => j.steps);
    const cmds = dispatcherCommands();
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    let called = 0;
    for (const s of steps) {
      if (s.uses) assert.match(s.uses, /^[\w-]+\/[\w-]+@v\d+$/, `action pinned to a major version: ${s.uses}`);
      if (!s.run) continue;
      for (const inv of lilithInvocations(s.run)) {
        called++;
        assert.ok(cmds.includes(inv[0]), `${file} calls "lilith ${inv[0]}", which cli/main.ts does not dispatch`);
      }
      for (const m of s.run.matchAll(/npm run (\S+)/g)) assert.ok(pkg.scripts[m[1]], `${file}: npm script ${m[1]} missing`);
    }
    assert.ok(called >= 2);
    assert.ok(
      steps.some((s) => s.uses?.startsWith('actions/checkout') && s.with?.['fetch-depth'] === 0),
      'full history for the base ref',
    );
  });
}

test('policy-gate.yml runs on pull requests and its prove command works as written', async () => {
  const wf = workflow('policy-gate.yml');
  assert.ok('pull_request' in wf.on);
  const steps = wf.jobs.prove.steps;
  const proveStep = steps.find((s) => s.id === 'prove')!;
  const inv = lilithInvocations(proveStep.run!).find((i) => i[0] === 'prove')!;
  assert.ok(inv.includes('--format') && inv.includes('markdown'));
  assert.ok(
    steps.some((s) => s.uses?.startsWith('actions/github-script')),
    'posts a PR comment',
  );
  assert.ok(
    steps.some((s) => s.run?.includes('exit 1') && String((s as { if?: string }).if).includes("steps.prove.outputs.code != '0'")),
    'fails the check on a non-zero exit',
  );
  // Run the command as CI would (base_ref = main, the PR branch checked out), minus the shell plumbing.
  const args = ['prove', '--base', 'origin/main', '--head', 'HEAD', '--format', 'markdown'];
  assert.deepEqual(inv.slice(0, args.length), args, 'the workflow runs exactly this command');
  const r = await lilith(args);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /<!-- lilith-prove -->/);
  assert.match(r.stdout, /❌ Lilith policy proof: escalation/);
});

test('release.yml runs on push to main, proves against HEAD~1 and signs with the secret key', () => {
  const wf = workflow('release.yml');
  assert.deepEqual((wf.on.push as { branches: string[] }).branches, ['main']);
  const runs = wf.jobs.release.steps.map((s) => s.run ?? '').join('\n');
  assert.match(runs, /prove --base HEAD~1 --head HEAD --out proof\.json/);
  assert.match(runs, /sign policies --key "\$key" --watermark auto --repo \. --branch capsules --proof proof\.json --out capsule\.json/);
  assert.match(runs, /publish capsule\.json --repo \. --branch capsules/);
  assert.ok(readFileSync(join(ROOT, '.github/workflows/release.yml'), 'utf8').includes('secrets.LILITH_SIGNING_KEY'));
  assert.ok(existsSync(join(ROOT, 'cli/commands/prove.ts')));
});

test('release flow: the proof report digest is what the signed capsule records as proof_digest', async () => {
  const work = mkdtempSync(join(tmpdir(), 'lilith-prove-release-'));
  try {
    await git('checkout', '-q', 'main');
    const proof = join(work, 'proof.json');
    const proved = await lilith(['prove', '--base', 'main', '--head', 'main', '--out', proof]);
    assert.equal(proved.code, 0, proved.stderr);
    const printed = /report sha256: ([0-9a-f]{64})/.exec(proved.stdout)![1];
    assert.equal(createHash('sha256').update(readFileSync(proof)).digest('hex'), printed);
    const keys = await lilith(['keygen', '--out', join(work, 'keys')]);
    assert.equal(keys.code, 0, keys.stderr);
    const signed = await lilith([
      'sign',
      'policies',
      '--key',
      join(work, 'keys/lilith.key'),
      '--watermark',
      '1',
      '--proof',
      proof,
      '--out',
      join(work, 'capsule.json'),
    ]);
    assert.equal(signed.code, 0, signed.stderr);
    const envelope = JSON.parse(readFileSync(join(work, 'capsule.json'), 'utf8')) as { payload: string };
    const payload = JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8')) as { proof_digest?: string };
    assert.equal(payload.proof_digest, printed);
  } finally {
    await git('checkout', '-q', 'widen');
    rmSync(work, { recursive: true, force: true });
  }
});
