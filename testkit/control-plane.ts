// Shared by the control-plane tests and the fleet bench: real keys, real signed
// capsules built from the bundled policies, real git pushes to a real smart-HTTP
// server, and a real `lilith enforcer` child process observed through `lilith status`.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { CAPSULE_FORMAT, generateSigningKey, signCapsule, trustFromKeys, type CapsulePayload, type SigningKey } from '../capsule/index.js';
import type { LilithConfig } from '../capsule/config.js';
import { readPolicyDir, toBundle } from '../pipeline/policy-source.js';
import { adminGet, adminPost } from '../enforcer/client/index.js';
import type { DaemonStatus } from '../enforcer/daemon/index.js';
import { startGitServer, type GitServer } from '../pipeline/git-http-server.js';

const run = promisify(execFile);
export const REPO_ROOT = resolve(import.meta.dirname, '../..');
export const CLI = join(REPO_ROOT, 'dist/cli/main.js');

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `lilith-${prefix}-`));
}

/** Sync flags that make a test enforcer follow its branch quickly; `timeoutMs` bounds one fetch. */
export function pollFlags(o: { minMs?: number; maxMs?: number; backoffMaxMs?: number; timeoutMs?: number } = {}): string[] {
  return [
    '--poll-min-ms',
    String(o.minMs ?? 100),
    '--poll-max-ms',
    String(o.maxMs ?? 300),
    '--backoff-max-ms',
    String(o.backoffMaxMs ?? 800),
    '--timeout-ms',
    String(o.timeoutMs ?? 3000),
  ];
}

/** The enforcer without its kernel programs and proxy: capsule sync and activation only. */
export const SYNC_ONLY = ['--no-kernel', '--no-dataplane'];

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real `lilith` CLI; never throws on a failing exit. */
export function runCli(args: string[]): Promise<CliResult> {
  return new Promise((done) => {
    execFile(process.execPath, [CLI, ...args], (err, stdout, stderr) => done({ code: err ? Number(err.code) : 0, stdout, stderr }));
  });
}

/** A capsule policy variant: 'base' is the bundled set; 'deny-all' adds a forbid-everything policy. */
export type Variant = 'base' | 'deny-all';

let basePromise: Promise<{
  policies: Record<string, string>;
  invariants: Record<string, string>;
  schema: string;
  entities: CapsulePayload['entities'];
  config: LilithConfig;
}> | null = null;
async function base() {
  basePromise ??= (async () => {
    const src = await readPolicyDir(join(REPO_ROOT, 'policies'));
    const bundle = toBundle(src);
    return {
      policies: src.policies,
      invariants: src.invariants,
      schema: src.schema,
      entities: bundle.entities,
      config: JSON.parse(src.configText) as LilithConfig,
    };
  })();
  return basePromise;
}

export interface CapsuleOptions {
  variant?: Variant;
  createdAt?: Date;
  expiresAt?: Date;
  sourceCommit?: string | null;
  onExpiry?: LilithConfig['on_expiry'];
  adminListen?: string;
  /** Replaces the kernel cgroup subtree and registrations (kernel tests use their own). */
  kernel?: Partial<LilithConfig['kernel']>;
  proxy?: Partial<LilithConfig['proxy']>;
  registrations?: LilithConfig['registrations'];
}

export async function makePayload(watermark: number, o: CapsuleOptions = {}): Promise<CapsulePayload> {
  const b = await base();
  const policies = { ...b.policies };
  if (o.variant === 'deny-all') policies['zz-deny-all.cedar'] = '@id("test-deny-all")\nforbid (principal, action, resource);\n';
  const createdAt = o.createdAt ?? new Date(Date.now() - 1000);
  return {
    format: CAPSULE_FORMAT,
    watermark,
    created_at: createdAt.toISOString(),
    expires_at: (o.expiresAt ?? new Date(Date.now() + 24 * 3600_000)).toISOString(),
    source_commit: o.sourceCommit ?? null,
    policies,
    invariants: b.invariants,
    schema: b.schema,
    entities: b.entities,
    config: {
      ...b.config,
      on_expiry: o.onExpiry ?? 'fail_closed',
      proxy: { ...b.config.proxy, admin_listen: o.adminListen ?? 'off', ...(o.proxy ?? {}) },
      kernel: { ...b.config.kernel, ...(o.kernel ?? {}) },
      registrations: o.registrations ?? b.config.registrations,
    },
  };
}

export async function makeCapsule(key: SigningKey | SigningKey[], watermark: number, o: CapsuleOptions = {}): Promise<Uint8Array> {
  return signCapsule(await makePayload(watermark, o), Array.isArray(key) ? key : [key]);
}

/** Writes a trust file listing `keys` (threshold 1) and returns its path. */
export async function writeTrust(dir: string, keys: SigningKey[], threshold = 1): Promise<string> {
  const path = join(dir, 'trust.json');
  await writeFile(path, JSON.stringify(trustFromKeys(keys, threshold), null, 2));
  return path;
}

export { generateSigningKey };

/** A work clone that commits capsule.json to the `capsules` branch and pushes with real git. */
export class Publisher {
  #n = 0;
  constructor(
    readonly work: string,
    readonly url: string,
    readonly branch = 'capsules',
  ) {}

  static async create(url: string, branch = 'capsules'): Promise<Publisher> {
    const work = await tempDir('publish');
    const git = (...a: string[]) => run('git', a, { cwd: work });
    await git('init', '-q', '-b', branch);
    await git('config', 'user.email', 'test@lilith.invalid');
    await git('config', 'user.name', 'lilith test');
    await git('remote', 'add', 'origin', url);
    return new Publisher(work, url, branch);
  }

  async #git(...a: string[]) {
    return run('git', a, { cwd: this.work });
  }

  /** Commits `bytes` as capsule.json on top of the branch and pushes; returns the commit. */
  async publish(bytes: Uint8Array | string, message = `capsule ${++this.#n}`): Promise<string> {
    await writeFile(join(this.work, 'capsule.json'), bytes);
    await this.#git('add', 'capsule.json');
    await this.#git('commit', '-q', '--allow-empty', '-m', message);
    await this.#git('push', '-q', 'origin', `HEAD:refs/heads/${this.branch}`);
    return (await this.#git('rev-parse', 'HEAD')).stdout.trim();
  }

  /** Rewrites history: a new root commit holding only `bytes`, force-pushed. */
  async forcePush(bytes: Uint8Array | string): Promise<string> {
    await this.#git('checkout', '-q', '--orphan', `rewrite-${++this.#n}`);
    await writeFile(join(this.work, 'capsule.json'), bytes);
    await this.#git('add', 'capsule.json');
    await this.#git('commit', '-q', '-m', 'rewritten history');
    await this.#git('push', '-q', '--force', 'origin', `HEAD:refs/heads/${this.branch}`);
    return (await this.#git('rev-parse', 'HEAD')).stdout.trim();
  }

  async dispose(): Promise<void> {
    await rm(this.work, { recursive: true, force: true });
  }
}

/** A real smart-HTTP git server with one capsule branch, a publisher, one signing key and its trust file. */
export class CapsuleBranch {
  private constructor(
    readonly srv: GitServer,
    readonly url: string,
    readonly pub: Publisher,
    readonly key: SigningKey,
    readonly dir: string,
    readonly trust: string,
  ) {}

  static async open(prefix: string, repo = 'policies.git'): Promise<CapsuleBranch> {
    const srv = await startGitServer();
    await srv.createBareRepo(repo);
    const url = srv.repoUrl(repo);
    const key = generateSigningKey();
    const dir = await tempDir(prefix);
    return new CapsuleBranch(srv, url, await Publisher.create(url), key, dir, await writeTrust(dir, [key]));
  }

  /** Opens a branch with capsule 1 published and an enforcer that has activated it. */
  static async withActiveEnforcer(prefix: string): Promise<{ branch: CapsuleBranch; enf: EnforcerProcess }> {
    const branch = await CapsuleBranch.open(prefix);
    await branch.pub.publish(await makeCapsule(branch.key, 1));
    const enf = branch.follow();
    await enf.waitFor((s) => s.active?.watermark === 1, 'watermark 1 active');
    return { branch, enf };
  }

  get stateDir(): string {
    return join(this.dir, 'state');
  }

  /** A sync-only enforcer following this branch, with fast polling. */
  follow(extra: string[] = [], env: NodeJS.ProcessEnv = {}): EnforcerProcess {
    return new EnforcerProcess(
      ['--git', this.url, '--trust', this.trust, '--state-dir', this.stateDir, ...pollFlags(), ...SYNC_ONLY, ...extra],
      join(this.dir, 'admin.sock'),
      env,
    );
  }

  async dispose(): Promise<void> {
    await this.pub.dispose();
    await this.srv.dispose();
    await rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * Publishes signed `bytes` that must be refused with `code`: the enforcer counts
 * one refusal naming `reason`, keeps deciding with the active capsule, audits
 * the refusal, and `lilith verify` refuses the same bytes.
 */
export async function assertRefusedEverywhere(
  branch: CapsuleBranch,
  enf: EnforcerProcess,
  bytes: Uint8Array,
  code: string,
  reason: RegExp,
): Promise<void> {
  const before = (await enf.status())!.refusals;
  const active = (await enf.status())!.active!.watermark;
  await branch.pub.publish(bytes);
  const st = await enf.waitFor((s) => s.refusals === before + 1, `refusal ${code}`);
  assert.equal(st.last_refusal!.code, code);
  assert.match(st.last_refusal!.reason, reason);
  assert.equal(st.active!.watermark, active);
  const d = await enf.probe();
  assert.equal(d.watermark, active);
  assert.equal(d.decision, 'allow');
  await sleep(100); // the audit line follows the status update
  const refused = (await readAudit(join(branch.stateDir, 'audit.jsonl'))).filter((e) => e.result === 'refused');
  assert.ok(String(refused.at(-1)?.reason).startsWith(`${code}:`), JSON.stringify(refused.at(-1)));

  const file = join(branch.dir, `refused-${before + 1}.json`);
  await writeFile(file, bytes);
  const v = await runCli(['verify', file, '--trust', branch.trust]);
  assert.equal(v.code, 1, v.stderr);
  assert.ok(v.stderr.includes(`refused (${code})`), v.stderr);
  assert.match(v.stderr, reason);
}

/** Allowed by the bundled policies ('read-file-clean'), denied by the 'deny-all' variant. */
export const PROBE_REQUEST = {
  principal: { type: 'Agent', id: 'spiffe://corp.example/agents/coder' },
  action: { type: 'Action', id: 'read_file' },
  resource: { type: 'MCPServer', id: 'files' },
  context: { taint: [], data_touched: 0, tool: 'read_file', arguments: { path: '/workspace/notes.txt' } },
};

/** A workspace write by the coder after an untrusted read: of the bundled policies, only `untrusted-no-writes` denies it. */
export const UNTRUSTED_WRITE_REQUEST = {
  principal: PROBE_REQUEST.principal,
  action: { type: 'Action', id: 'write_file' },
  resource: { type: 'MCPServer', id: 'files' },
  context: { taint: ['UNTRUSTED'], data_touched: 4, tool: 'write_file', arguments: { path: '/workspace/notes.txt' } },
  entities: [{ uid: PROBE_REQUEST.principal, attrs: {}, parents: [{ type: 'AgentGroup', id: 'coding' }] }],
};

/** The bundled capsule with the condition of `untrusted-no-writes` rewritten (a fixture for capsules that fail open). */
export async function withUntrustedNoWritesCondition(watermark: number, condition: string): Promise<CapsulePayload> {
  const p = await makePayload(watermark);
  const file = Object.keys(p.policies).find((f) => p.policies[f].includes('@id("untrusted-no-writes")'))!;
  const text = p.policies[file].replace('when { context.taint.contains("UNTRUSTED") }', `when { ${condition} }`);
  assert.notEqual(text, p.policies[file], 'fixture: the forbid was found and changed');
  return { ...p, policies: { ...p.policies, [file]: text } };
}

/** A `lilith enforcer` child process (sync only) and its admin socket. */
export class EnforcerProcess {
  child: ChildProcess;
  stderr = '';
  exit: Promise<number | null>;

  constructor(
    readonly args: string[],
    readonly socket: string,
    env: NodeJS.ProcessEnv = {},
    cli = CLI,
  ) {
    this.child = spawn(process.execPath, [cli, 'enforcer', ...args, '--admin-socket', socket], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.child.stderr!.on('data', (c: Buffer) => (this.stderr += c.toString()));
    this.exit = new Promise((r) => this.child.once('exit', (code) => r(code)));
  }

  async status(): Promise<DaemonStatus | null> {
    try {
      const res = await adminGet(this.socket, '/status', 2000);
      return res.status === 200 ? (JSON.parse(res.body) as DaemonStatus) : null;
    } catch {
      return null;
    }
  }

  /** Polls status until `pred` holds; throws with the last status and stderr after `timeoutMs`. */
  async waitFor(pred: (s: DaemonStatus) => boolean, what: string, timeoutMs = 30_000, intervalMs = 50): Promise<DaemonStatus> {
    const deadline = Date.now() + timeoutMs;
    let last: DaemonStatus | null = null;
    while (Date.now() < deadline) {
      last = await this.status();
      if (last && pred(last)) return last;
      if (this.child.exitCode !== null) break;
      await sleep(intervalMs);
    }
    throw new Error(
      `timed out waiting for: ${what}\nlast status: ${JSON.stringify(last, null, 1)?.slice(0, 3000)}\nstderr:\n${this.stderr.slice(-3000)}`,
    );
  }

  /** What-if decision of the active capsule for the standard probe request (read_file by the coder agent). */
  async probe(): Promise<{ decision: string; reasons: string[]; watermark: number | null }> {
    const res = await adminPost(this.socket, '/authorize', PROBE_REQUEST);
    if (res.status !== 200) throw new Error(`authorize: HTTP ${res.status} ${res.body}`);
    return JSON.parse(res.body) as { decision: string; reasons: string[]; watermark: number | null };
  }

  async kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exit;
  }
}

/** Runs `lilith status` (the real CLI) and parses its --json output. */
export async function cliStatus(socket: string): Promise<{ code: number; status: DaemonStatus | null; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [CLI, 'status', '--socket', socket, '--json']);
    return { code: 0, status: JSON.parse(r.stdout) as DaemonStatus, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    let status: DaemonStatus | null = null;
    try {
      status = JSON.parse(e.stdout) as DaemonStatus;
    } catch {
      // unreachable daemon: no JSON
    }
    return { code: e.code, status, stdout: e.stdout, stderr: e.stderr };
  }
}

export async function readAudit(path: string): Promise<Array<Record<string, unknown>>> {
  try {
    return (await readFile(path, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  } catch {
    return [];
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export { mkdir };
