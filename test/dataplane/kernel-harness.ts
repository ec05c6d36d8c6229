// A managed agent with the kernel doing the redirect (host cgroup mode): a real
// cgroup with Lilith's cgroup programs attached, the real dataplane behind them
// (origin from bpf, identity from /proc facts matched against the coder
// registration, which selects the cgroup), and a way to run commands inside it.
// Shared by the kernel-redirect tests; each test file brings its own upstreams.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { attach, type Kernel } from '../../bpf/index.js';
import type { LilithConfig } from '../../capsule/config.js';
import type { DecisionAuditEvent } from '../../enforcer/audit/event.js';
import { FileAuditSink } from '../../enforcer/daemon/audit-sink.js';
import { startDataplane, type Dataplane, type DataplaneOptions } from '../../enforcer/dataplane/dataplane.js';
import { KernelOriginResolver } from '../../enforcer/dataplane/origin.js';
import { makeCgroup, makePinRoot, probeBinary, repoRoot, type TestCgroup } from '../../testkit/kernel.js';
import { MutableSnapshots, snapshotFromDir, testPolicyDir, type PolicyTweaks } from './helpers.js';

const run = promisify(execFile);
export const AGENT_SCRIPT = join(fileURLToPath(new URL('.', import.meta.url)), 'kernel-agent.js');
export const CODER_ID = 'spiffe://corp.example/agents/coder';

export interface ManagedAgentOptions {
  entities?: PolicyTweaks['entities'];
  /** Further lilith.json changes, after the coder registration was pointed at the agent cgroup. */
  config?: (c: LilithConfig) => void;
  /** Where the DNS front forwards allowed queries. */
  dnsUpstream?: string;
  /** Further dataplane options (e.g. the interception CA). */
  dataplane?: Partial<DataplaneOptions>;
  /** Environment of every command run in the agent (e.g. the CA variables `lilith run` sets). */
  env?: NodeJS.ProcessEnv;
}

export interface CommandResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Why the kernel tests cannot run here, or false. */
export function kernelSkipReason(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (cgroup BPF)';
  try {
    execFileSync('make', ['-s', '-C', join(repoRoot, 'bpf')], { stdio: 'ignore' });
    probeBinary(true);
  } catch (err) {
    return `bpf objects or lilith-probe do not build: ${(err as Error).message}`;
  }
  return false;
}

export class ManagedAgent {
  private constructor(
    readonly kernel: Kernel,
    readonly cgroup: TestCgroup,
    readonly dp: Dataplane,
    readonly audit: FileAuditSink,
    readonly dir: string,
    readonly auditPath: string,
    readonly env: NodeJS.ProcessEnv | undefined,
  ) {}

  static async start(o: ManagedAgentOptions): Promise<ManagedAgent> {
    const cgroup = makeCgroup();
    const cgPath = `/${basename(cgroup.dir)}`;
    let dir: string | undefined;
    let dp: Dataplane | undefined;
    let audit: FileAuditSink | undefined;
    try {
      dir = await testPolicyDir({
        entities: o.entities,
        config: (c) => {
          // The coder registration selects this agent cgroup (as /proc/<pid>/cgroup shows it).
          c.registrations = c.registrations
            .map((r) => (r.spiffe_id === CODER_ID ? { ...r, selectors: [`cgroup:${cgPath}`] } : r))
            .filter((r) => !r.spiffe_id.endsWith('/coder/node'));
          o.config?.(c);
        },
      });
      const auditPath = join(dir, 'audit.jsonl');
      audit = new FileAuditSink(auditPath);
      const kernelRef: { k?: Kernel } = {};
      dp = await startDataplane({
        snapshots: new MutableSnapshots(await snapshotFromDir(dir)),
        origin: new KernelOriginResolver({ originalDestination: (peer) => kernelRef.k?.originalDestination(peer) ?? null }),
        audit,
        listen: { proxy: ['127.0.0.1:0'], dns: '127.0.0.1:0' },
        dnsUpstream: o.dnsUpstream,
        ...o.dataplane,
      });
      const kernel = await attach({
        cgroupPath: cgroup.dir,
        pinRoot: makePinRoot(),
        mode: 'cgroup-only',
        proxy: { address: '127.0.0.1', port: dp.proxyAddresses[0].port, dnsPort: dp.dnsAddress!.port },
      });
      kernelRef.k = kernel;
      kernel.registerIdentity({ cgroup: cgroup.dir }, 7);
      kernel.startHeartbeat();
      return new ManagedAgent(kernel, cgroup, dp, audit, dir, auditPath, o.env);
    } catch (err) {
      await dp?.close();
      await audit?.close();
      cgroup.remove();
      if (dir) await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Runs a command as a managed process inside the agent cgroup. */
  exec(cmd: string, args: string[]): Promise<CommandResult> {
    const env = this.env && { ...process.env, ...this.env };
    return run(probeBinary(false), ['cg', this.cgroup.procs, 'exec', cmd, ...args], { timeout: 60_000, env }).then(
      (r) => ({ ...r, code: 0 }),
      (e: CommandResult) => ({ stdout: e.stdout, stderr: e.stderr, code: e.code }),
    );
  }

  /** Runs kernel-agent.js inside the cgroup and parses the JSON line it prints last. */
  async agent(args: string[]): Promise<Record<string, unknown>> {
    const r = await this.exec(process.execPath, [AGENT_SCRIPT, ...args]);
    const line = r.stdout.trim().split('\n').at(-1);
    assert.ok(line, `the agent printed nothing: ${r.stderr}`);
    return JSON.parse(line) as Record<string, unknown>;
  }

  /** The audit events written so far, from the `since`-th on. */
  async events(since = 0): Promise<DecisionAuditEvent[]> {
    await this.audit.flush();
    return (await readFile(this.auditPath, 'utf8').catch(() => ''))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as DecisionAuditEvent)
      .slice(since);
  }

  async close(): Promise<void> {
    this.kernel.detachAll();
    this.cgroup.remove();
    await this.dp.close();
    await this.audit.close();
    await rm(this.dir, { recursive: true, force: true });
  }
}
