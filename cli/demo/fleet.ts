// Step 4: the fleet. Three `lilith enforcer` processes follow the capsules
// branch of the git server: the first with the kernel programs and the
// dataplane (the agent's host), two more with sync only, each on its own admin
// socket and metrics port. Each reports the watermark and digest it enforces.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { adminGet } from '../../enforcer/client/index.js';
import type { DaemonStatus } from '../../enforcer/daemon/index.js';
import type { DemoContext, EnforcerOutcome } from './context.js';
import { detail, say, skipped, table } from './narrate.js';
import { CLI } from './paths.js';

export interface Enforcer extends EnforcerOutcome {
  dir: string;
  pid(): number;
  status(): Promise<DaemonStatus | null>;
  /** The enforcer's own stderr so far (why it exited, when it did). */
  log(): string;
  exited(): boolean;
}

const POLL = ['--poll-min-ms', '300', '--poll-max-ms', '600'];

function startEnforcer(ctx: DemoContext, name: string, o: { kernel: boolean; dataplane: boolean; adminPort: number }): Enforcer {
  const dir = join(ctx.work, 'fleet', name);
  const socket = join(dir, 'admin.sock');
  const audit = join(dir, 'audit.jsonl');
  const args = [
    'enforcer',
    '--git',
    ctx.gitUrl,
    '--trust',
    ctx.keys.trust,
    '--state-dir',
    join(dir, 'state'),
    '--admin-socket',
    socket,
    '--admin-listen',
    `127.0.0.1:${o.adminPort}`,
    '--audit',
    audit,
    ...POLL,
    ...(o.kernel ? [] : ['--no-kernel']),
    ...(o.dataplane ? [] : ['--no-dataplane']),
  ];
  const proc: ChildProcess = spawn(process.execPath, [CLI, ...args], {
    env: o.kernel ? { ...process.env, LILITH_PIN_ROOT: ctx.pinRoot } : process.env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  proc.stderr?.on('data', (c: Buffer) => {
    log = (log + c.toString()).slice(-20_000);
  });
  ctx.cleanup.add(`enforcer ${name}`, () => stopProcess(proc));
  return {
    name,
    dir,
    socket,
    audit,
    kernel: o.kernel,
    dataplane: o.dataplane,
    metrics: `http://127.0.0.1:${o.adminPort}/metrics`,
    pid: () => proc.pid ?? -1,
    log: () => log,
    exited: () => proc.exitCode !== null || proc.signalCode !== null,
    async status() {
      try {
        const r = await adminGet(socket, '/status', 2000);
        return r.status === 200 ? (JSON.parse(r.body) as DaemonStatus) : null;
      } catch {
        return null;
      }
    },
  };
}

/** SIGTERM, then SIGKILL if it has not exited within 5 s. */
export async function stopProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** Detaches the pinned programs and removes this run's cgroup subtree (after the enforcer and agents have stopped). */
async function removeKernelState(ctx: DemoContext): Promise<void> {
  const { detachPinned } = await import('../../bpf/index.js');
  const { cgroup2Root } = await import('../../confine/cgroup.js');
  if (existsSync(ctx.pinRoot)) {
    try {
      detachPinned(ctx.pinRoot);
    } finally {
      rmSync(ctx.pinRoot, { recursive: true, force: true });
    }
  }
  const walk = (d: string) => {
    if (!existsSync(d)) return;
    for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
    rmdirSync(d);
  };
  walk(join(cgroup2Root(), ctx.tag));
}

/** Polls until every enforcer enforces `watermark` (and the first one's kernel and proxy are up). */
export async function waitForFleet(fleet: Enforcer[], watermark: number, timeoutMs = 30_000): Promise<DaemonStatus[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const all = await Promise.all(fleet.map((e) => e.status()));
    const ready = all.every((s, i) => {
      const e = fleet[i];
      if (!s || s.active?.watermark !== watermark) return false;
      if (e.kernel && (s.kernel.mode === 'off' || s.kernel.heartbeat_age_ms === null)) return false;
      const dp = s.dataplane as { listen?: string[] };
      return !e.dataplane || (dp.listen?.length ?? 0) > 0;
    });
    if (ready) return all as DaemonStatus[];
    const dead = fleet.find((e) => e.exited());
    if (dead) throw new Error(`enforcer ${dead.name} exited: ${dead.log().trim().slice(-1500)}`);
    if (Date.now() > deadline) {
      const where = all.map(
        (s, i) =>
          `${fleet[i].name}: ${s ? `watermark ${s.active?.watermark ?? 'none'}, kernel ${s.kernel.mode}${s.kernel.error ? ` (${s.kernel.error})` : ''}` : 'no answer'}`,
      );
      throw new Error(`the fleet did not reach watermark ${watermark} within ${timeoutMs} ms (${where.join('; ')})`);
    }
    await sleep(100);
  }
}

/** Writes each enforcer's /status document (as `lilith status --json` prints it) to fleet/NAME/status-LABEL.json. */
export async function snapshot(fleet: Enforcer[], label: string): Promise<void> {
  for (const e of fleet) {
    const s = await e.status();
    await writeFile(join(e.dir, `status-${label}.json`), JSON.stringify(s, null, 2) + '\n');
  }
}

export function fleetTable(fleet: Enforcer[], statuses: DaemonStatus[]): string {
  const rows = [['enforcer', 'kernel', 'dataplane', 'watermark', 'digest', 'admin socket']];
  statuses.forEach((s, i) => {
    const dp = s.dataplane as { enabled: boolean; listen?: string[] };
    rows.push([
      fleet[i].name,
      s.kernel.mode,
      dp.enabled ? `proxy ${dp.listen?.join(' ') ?? ''}` : 'off',
      String(s.active?.watermark ?? '-'),
      `${s.active?.digest.slice(0, 16) ?? '-'}…`,
      fleet[i].socket,
    ]);
  });
  return table(rows);
}

export async function startFleet(ctx: DemoContext, watermark: number): Promise<Enforcer[]> {
  await mkdir(join(ctx.work, 'fleet'), { recursive: true });
  const kernel = ctx.can.kernel === null;
  if (kernel) ctx.cleanup.add('kernel programs (pins) and agent cgroups', () => removeKernelState(ctx));
  else {
    skipped('kernel enforcement on enforcer-1', ctx.can.kernel!);
    ctx.outcome.skipped.push({ what: 'kernel enforcement', why: ctx.can.kernel! });
  }
  const fleet = [
    startEnforcer(ctx, 'enforcer-1', { kernel, dataplane: true, adminPort: ctx.ports.admin[0] }),
    startEnforcer(ctx, 'enforcer-2', { kernel: false, dataplane: false, adminPort: ctx.ports.admin[1] }),
    startEnforcer(ctx, 'enforcer-3', { kernel: false, dataplane: false, adminPort: ctx.ports.admin[2] }),
  ];
  for (const e of fleet) await mkdir(e.dir, { recursive: true });
  ctx.outcome.fleet = fleet.map(({ name, socket, audit, kernel, dataplane, metrics }) => ({
    name,
    socket,
    audit,
    kernel,
    dataplane,
    metrics,
  }));
  say(`   $ lilith enforcer --git ${ctx.gitUrl} --trust trust.json … (×3; enforcer-2 and -3 with --no-kernel --no-dataplane)`);
  const t0 = Date.now();
  const statuses = await waitForFleet(fleet, watermark, 45_000);
  say(`   all three enforce watermark ${watermark} ${((Date.now() - t0) / 1000).toFixed(1)} s after start:`);
  detail(fleetTable(fleet, statuses));
  const hooks = statuses[0].kernel.hooks;
  if (kernel)
    say(
      `   enforcer-1 kernel: ${statuses[0].kernel.mode}, ${hooks.length} hooks (${hooks.join(' ')}), heartbeat ${statuses[0].kernel.heartbeat_age_ms} ms ago`,
    );
  await snapshot(fleet, `w${watermark}`);
  return fleet;
}
