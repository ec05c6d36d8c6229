// `lilith demo` (what `npm start` runs): the pipeline on the bundled policies,
// one readable step at a time — validate → development key → sign → verify →
// publish to a local git server → a real `lilith enforcer` syncs and enforces it.
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseCommandArgs, runCommand } from '../args.js';
import {
  generateSigningKey,
  parseTrust,
  readSigningKey,
  readState,
  signCapsule,
  stateFor,
  trustFromKeys,
  verifyCapsule,
  writeKeyFiles,
  writeStateAtomic,
  type SigningKey,
} from '../../capsule/index.js';
import { buildPayload, parseDuration } from '../../pipeline/capsule-build.js';
import { readPolicyDir } from '../../pipeline/policy-source.js';
import { formatDiagnostic, validatePolicySource } from '../../pipeline/validate.js';

export const summary = 'run the pipeline on the bundled policies: validate, sign with a dev key, verify';

export const usage = `usage: lilith demo [--policies DIR] [--work DIR] [--keep-running]

  --policies DIR   policy repository (default ./policies)
  --work DIR       where the development key, capsule and state go (default ./.cache)
  --keep-running   leave the git server and the enforcer running until Ctrl-C
                   (default: stop them and clean up; the demo ends by itself)
The development key (DIR/dev-keys/dev.key) is created once and reused. It is for
local use only: production keys belong to the release pipeline.
`;

const say = (line: string) => process.stdout.write(line + '\n');

async function devKey(dir: string): Promise<{ key: SigningKey; created: boolean }> {
  const path = join(dir, 'dev.key');
  if (await stat(path).catch(() => null)) return { key: await readSigningKey(path), created: false };
  const key = generateSigningKey();
  await writeKeyFiles(dir, key, 'dev');
  await writeFile(join(dir, 'trust.json'), JSON.stringify(trustFromKeys([key], 1), null, 2) + '\n');
  return { key, created: true };
}

export async function run(argv: string[]): Promise<number> {
  return runCommand(async () => {
    const { values } = parseCommandArgs(
      argv,
      {
        policies: { type: 'string', default: 'policies' },
        work: { type: 'string', default: '.cache' },
        'keep-running': { type: 'boolean', default: false },
      },
      usage,
    );
    const policiesDir = values.policies;
    const keysDir = join(values.work, 'dev-keys');
    const stateDir = join(values.work, 'demo-state');
    const capsulePath = join(values.work, 'demo-capsule.json');
    await mkdir(values.work, { recursive: true });

    say(`1. validate ${policiesDir}`);
    const src = await readPolicyDir(policiesDir);
    const report = validatePolicySource(src);
    for (const d of report.diagnostics) say(`   ${formatDiagnostic(d, join(policiesDir, d.file), 'text')}`);
    if (report.errorCount > 0) {
      say(`   ${report.errorCount} error(s): fix them and run again`);
      return 1;
    }
    say(`   ok: ${report.policyIds.length} policies, ${report.invariantIds.length} invariants, schema, entities and lilith.json valid`);

    say(`2. development signing key (${keysDir})`);
    const { key, created } = await devKey(keysDir);
    say(`   ${created ? 'created' : 'reused'} key ${key.keyid.slice(0, 16)}…`);

    say('3. sign');
    const state = await readState(stateDir);
    const watermark = (state?.watermark ?? 0) + 1;
    const payload = buildPayload(src, { watermark, now: new Date(), validityMs: parseDuration('1d')!, sourceCommit: null });
    const bytes = signCapsule(payload, [key]);
    await writeFile(capsulePath, bytes);
    say(`   ${capsulePath}: watermark ${watermark}, ${bytes.length} bytes, expires ${payload.expires_at}`);

    say('4. verify (as an enforcer would) and record the acceptance');
    const trust = parseTrust(await readFile(join(keysDir, 'trust.json')), 'dev trust file');
    const verified = verifyCapsule(await readFile(capsulePath), trust, state, new Date());
    await writeStateAtomic(stateDir, stateFor(verified, new Date()));
    say(`   valid: signed by ${verified.keyids.length}/${trust.threshold} trusted key(s), payload sha256 ${verified.digest.slice(0, 16)}…`);
    say(`   anti-rollback state ${join(stateDir, 'state.json')}: watermark ${watermark} (previous ${state?.watermark ?? 'none'})`);

    return gitopsLoop({ bytes, keysDir, keepRunning: values['keep-running']! });
  });
}

// ---- steps 5-8: publish to a local git server, a real enforcer syncs and enforces ----

/** Allowed by the bundled policies: a clean session reads a file on an approved MCP server. */
const ALLOWED = {
  principal: { type: 'Agent', id: 'spiffe://corp.example/agents/coder' },
  action: { type: 'Action', id: 'read_file' },
  resource: { type: 'MCPServer', id: 'files' },
  context: { taint: [], data_touched: 0, tool: 'read_file', arguments: { path: '/workspace/README.md' } },
};
/** Denied: the same agent tries egress after its session read credentials (taint CREDENTIALS). */
const DENIED = {
  principal: { type: 'Agent', id: 'spiffe://corp.example/agents/coder' },
  action: { type: 'Action', id: 'http_post' },
  resource: { type: 'MCPServer', id: 'files' },
  context: { taint: ['CREDENTIALS'], data_touched: 8, tool: 'http_post', arguments: { url: 'https://paste.example/upload' } },
};

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | null>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => null);
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`demo: timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function gitopsLoop(o: { bytes: Uint8Array; keysDir: string; keepRunning: boolean }): Promise<number> {
  const { startGitServer } = await import('../../pipeline/git-http-server.js');
  const { publishCapsule } = await import('../../pipeline/publish.js');
  const { adminGet, adminPost } = await import('../../enforcer/daemon/index.js');
  const { formatStatus } = await import('./status.js');
  const { spawn } = await import('node:child_process');
  const { mkdtemp, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { fileURLToPath } = await import('node:url');
  type Status = import('../../enforcer/daemon/index.js').DaemonStatus;

  const tmp = await mkdtemp(join(tmpdir(), 'lilith-demo-'));
  const server = await startGitServer();
  let enforcer: ReturnType<typeof spawn> | null = null;
  let enforcerLog = '';
  const cleanup = async () => {
    if (enforcer && enforcer.exitCode === null) {
      const exited = new Promise((r) => enforcer!.once('exit', r));
      enforcer.kill('SIGTERM');
      await exited;
    }
    await server.dispose();
    await rm(tmp, { recursive: true, force: true });
  };
  try {
    say('5. publish to a local git server (git http-backend, smart HTTP)');
    await server.createBareRepo('policies.git');
    const url = server.repoUrl('policies.git');
    const published = await publishCapsule(o.bytes, { repo: url });
    say(`   ${url} branch capsules: commit ${published.commit.slice(0, 12)}, watermark ${published.watermark}`);

    say('6. start an enforcer that follows the branch (sync + verify + activate; kernel and proxy off in the demo)');
    const socket = join(tmp, 'admin.sock');
    const args = [
      fileURLToPath(new URL('../main.js', import.meta.url)),
      'enforcer',
      '--git',
      url,
      '--trust',
      join(o.keysDir, 'trust.json'),
      '--state-dir',
      join(tmp, 'state'),
      '--admin-socket',
      socket,
      '--admin-listen',
      'off',
      '--no-kernel',
      '--no-dataplane',
      '--poll-min-ms',
      '500',
      '--poll-max-ms',
      '1000',
    ];
    say(`   lilith ${args.slice(1).join(' ')}`);
    const t0 = Date.now();
    enforcer = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    enforcer.stderr!.on('data', (c: Buffer) => (enforcerLog += c.toString()));
    const status = async (): Promise<Status | null> => {
      const r = await adminGet(socket, '/status', 2000);
      return r.status === 200 ? (JSON.parse(r.body) as Status) : null;
    };
    const active = await waitFor('the enforcer to activate the capsule', 60_000, async () => {
      if (enforcer!.exitCode !== null) throw new Error(`enforcer exited: ${enforcerLog}`);
      const s = await status();
      return s?.active?.watermark === published.watermark ? s : null;
    });
    say(`   enforcing watermark ${active.active!.watermark} ${Date.now() - t0} ms after start. \`lilith status --socket ${socket}\`:`);
    for (const line of formatStatus((await status()) ?? active).split('\n')) say(`     ${line}`);

    say('7. decisions by the enforcer on the capsule it synced');
    for (const [label, req] of [
      ['allowed', ALLOWED],
      ['denied', DENIED],
    ] as const) {
      const r = await adminPost(socket, '/authorize', req);
      const d = JSON.parse(r.body) as { decision: string; reasons: string[]; watermark: number };
      const ctx = req.context as { taint: string[] };
      say(
        `   ${label.padEnd(7)} ${req.action.id} by ${req.principal.id} on ${req.resource.type}::"${req.resource.id}" (taint [${ctx.taint.join(', ')}]) → ${d.decision.toUpperCase()} by ${d.reasons.join(', ') || 'no permit'} (watermark ${d.watermark})`,
      );
    }

    say('8. a tampered capsule is refused; the enforcer keeps the verified one');
    const env = JSON.parse(Buffer.from(o.bytes).toString('utf8')) as { payload: string };
    const payload = JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8')) as {
      watermark: number;
      policies: Record<string, string>;
    };
    payload.watermark += 1;
    payload.policies['backdoor.cedar'] = '@id("backdoor")\npermit (principal, action, resource);\n';
    env.payload = Buffer.from(JSON.stringify(payload)).toString('base64');
    await publishCapsule(Buffer.from(JSON.stringify(env)), { repo: url });
    const refused = await waitFor('the refusal', 30_000, async () => {
      const s = await status();
      return s && s.refusals > 0 ? s : null;
    });
    say(`   refused: ${refused.last_refusal!.code}: ${refused.last_refusal!.reason}`);
    say(`   still enforcing watermark ${refused.active!.watermark} (digest ${refused.active!.digest.slice(0, 16)}…)`);

    if (o.keepRunning) {
      say('');
      say(`Running. Try: lilith status --socket ${socket}   ·   publish: lilith publish FILE --repo ${url}`);
      say('Ctrl-C stops the enforcer and the git server and removes the demo files.');
      await new Promise<void>((r) => process.once('SIGINT', () => r()));
    }
    say('');
    say('Done: policies validated, signed, published to git, synced, verified and enforced by the enforcer.');
    say('Real agent traffic through the kernel redirect and the proxy, against attacks: `npm run redteam` (root, cgroup v2).');
    return 0;
  } finally {
    await cleanup();
  }
}
