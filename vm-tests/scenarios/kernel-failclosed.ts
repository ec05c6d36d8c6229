// Fail closed, measured: a heartbeating daemon (bpf/daemon-lite) is killed
// with SIGKILL; a managed process that keeps connecting records, on
// CLOCK_MONOTONIC, when its connect first gets EPERM. The daemon is then
// restarted (re-adopting the pinned programs) and the time until traffic flows
// again is measured the same way. Numbers go to the results share.
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { detachPinned } from '../../bpf/index.js';
import { ensureCgroup2 } from '../../bpf/mounts.js';
import { probeCopies, startDaemonLite, type DaemonLite } from '../../testkit/kernel-fixtures.js';
import { fakeProxy, makePinRoot, probe, runProbe, type ProbeLine } from '../../testkit/kernel.js';
import { Checks, type ScenarioContext, type ScenarioResult } from '../scenario.js';

export const description =
  'fail-closed: SIGKILL the heartbeating daemon → time until a managed connect gets EPERM; restart → time until traffic flows';
export const bootLsm = 'bpf';

type Daemon = DaemonLite<{ mode: string; adopted: boolean; active: number; missing: number; ms: number }>;

const ms = (ns: bigint): number => Number(ns) / 1e6;

export async function run(ctx: ScenarioContext): Promise<ScenarioResult> {
  const c = new Checks();
  const [agentBin] = probeCopies(ctx.workDir, ['agent-probe']) as [string];
  const proxy = await fakeProxy(() => undefined);
  const pinRoot = makePinRoot();
  const config = {
    cgroupPath: ensureCgroup2(),
    pinRoot,
    mode: 'bpf-lsm',
    proxy: { address: '127.0.0.1', port: proxy.port, dnsPort: proxy.dnsPort },
    identities: [{ selector: { binary: agentBin }, identity: 21 }],
  };
  const daemons: ChildProcess[] = [];
  const numbers: Record<string, number | string | boolean> = { kernel: ctx.kernelRelease, ttlMs: 1000, heartbeatMs: 250 };
  try {
    const first = await startDaemonLite<Daemon['ready']>(config);
    daemons.push(first.child);
    numbers.firstAttachMs = first.ready.ms;
    c.expect(
      'daemon-lite attached in bpf-lsm mode',
      first.ready.mode === 'bpf-lsm' && first.ready.missing === 0,
      JSON.stringify(first.ready),
    );
    const before = await probe([agentBin, 'connect', '10.9.9.9', '80']);
    c.expect(
      'while the daemon heartbeats, a managed connect reaches the proxy',
      before.reply === 'proxy unknown' && before.peer === '10.9.9.9:80',
      `${before.op} ok=${before.ok} errno=${before.errno} reply=${before.reply} peer=${before.peer}`,
    );

    // Kill -9 while a managed process keeps connecting.
    const watcher = runProbe([agentBin, 'until', 'denied', '5000', '10.9.9.9', '80']);
    await new Promise((r) => setTimeout(r, 300));
    const killNs = process.hrtime.bigint();
    first.child.kill('SIGKILL');
    const denied = (await watcher).at(-1) as (ProbeLine & { mono_ns?: number; attempts?: number }) | undefined;
    const failClosedMs = denied?.ok && denied.mono_ns ? ms(BigInt(denied.mono_ns) - killNs) : NaN;
    numbers.failClosedMs = Math.round(failClosedMs);
    // Reported, not asserted against a clock (target with the defaults: < 1 s).
    c.expect(
      'after SIGKILL of the daemon a managed connect gets EPERM (time reported)',
      denied?.ok === true,
      `EPERM ${failClosedMs.toFixed(0)} ms after SIGKILL (target < 1000 ms; ${denied?.attempts ?? 0} connect attempts)`,
    );
    const still = await probe([agentBin, 'connect', '10.9.9.9', '80']);
    c.expect(
      'with the daemon dead the programs stay attached (pinned) and keep denying',
      still.errno === 1,
      `${still.op} errno=${still.errno}`,
    );

    // Restart: re-adopt, heartbeat, traffic again.
    const watcher2 = runProbe([agentBin, 'until', 'allowed', '90000', '10.9.9.9', '80'], { timeoutMs: 95000 });
    await new Promise((r) => setTimeout(r, 100));
    const second = await startDaemonLite<Daemon['ready']>(config);
    daemons.push(second.child);
    const allowed = (await watcher2).at(-1) as (ProbeLine & { mono_ns?: number }) | undefined;
    const restoreMs = allowed?.ok && allowed.mono_ns ? ms(BigInt(allowed.mono_ns) - second.startedNs) : NaN;
    numbers.restartReadyMs = Math.round(ms(second.readyNs - second.startedNs));
    numbers.restartAttachMs = second.ready.ms;
    numbers.restoreMs = Math.round(restoreMs);
    numbers.readopted = second.ready.adopted;
    c.expect(
      'the restarted daemon re-adopts the pinned programs (no reload, no gap)',
      second.ready.adopted === true,
      JSON.stringify(second.ready),
    );
    c.expect(
      'after restart a managed connect flows again',
      allowed?.ok === true,
      `traffic restored ${restoreMs.toFixed(0)} ms after the daemon process started (node start + attach ${second.ready.ms} ms)`,
    );
  } finally {
    for (const d of daemons) d.kill('SIGKILL');
    detachPinned(pinRoot);
    await proxy.close();
    writeFileSync(join(ctx.resultsDir, 'kernel-failclosed-numbers.json'), `${JSON.stringify(numbers, null, 2)}\n`);
    ctx.log(`numbers: ${JSON.stringify(numbers)}`);
  }
  return c.result();
}
