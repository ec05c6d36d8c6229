// Fail-closed timing and gapless restarts, asserted on this host's kernel
// (cgroup-only mode): a heartbeating daemon (testkit/daemon-lite) is killed with
// SIGKILL while a managed process keeps connecting, and the kernel's own
// verdicts are timed on CLOCK_MONOTONIC.
//  - without a restart, the first EPERM comes at most TTL + one heartbeat after the kill;
//  - restarted after the shipped systemd unit's RestartSec (as systemd would), the
//    new daemon re-adopts the pinned programs and managed traffic is never denied
//    for longer than TTL + one heartbeat.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { detachPinned } from '../../bpf/index.js';
import { startDaemonLite } from '../../testkit/kernel-fixtures.js';
import {
  fakeProxy,
  makeCgroup,
  makePinRoot,
  probeBinary,
  repoRoot,
  runProbe,
  sleep,
  type FakeProxy,
  type TestCgroup,
} from '../../testkit/kernel.js';

const TTL_MS = 1000;
const HEARTBEAT_MS = 250;
const BOUND_MS = TTL_MS + HEARTBEAT_MS;

/** A systemd time span ("100ms", "2s", "1.5s", "500") in ms. */
function spanMs(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(v.trim());
  assert.ok(m, `not a time span: ${v}`);
  return Number(m[1]) * (m[2] === 'ms' ? 1 : 1000);
}

function unitValue(key: string): string {
  const unit = readFileSync(join(repoRoot, 'deploy/systemd/lilith-enforcer.service'), 'utf8');
  const m = new RegExp(`^${key}=(.*)$`, 'm').exec(unit);
  assert.ok(m, `the systemd unit sets ${key}`);
  return m[1]!;
}

interface Ready {
  mode: string;
  adopted: boolean;
  ms: number;
}

let proxy: FakeProxy;
let agent: TestCgroup;
let pinRoot: string;
const daemons: ChildProcess[] = [];

function startDaemon(): Promise<{ child: ChildProcess; ready: Ready }> {
  const config = {
    cgroupPath: agent.dir,
    pinRoot,
    mode: 'cgroup-only',
    heartbeatTtlMs: TTL_MS,
    heartbeatMs: HEARTBEAT_MS,
    proxy: { address: '127.0.0.1', port: proxy.port, dnsPort: proxy.dnsPort },
    identities: [{ selector: { cgroup: agent.dir }, identity: 9 }],
  };
  return startDaemonLite<Ready>(config, (child) => daemons.push(child));
}

const kill9 = async (child: ChildProcess): Promise<bigint> => {
  const at = process.hrtime.bigint(); // CLOCK_MONOTONIC, the probe's clock
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  return at;
};

before(async () => {
  execFileSync('make', ['-s', '-C', join(repoRoot, 'bpf')], { stdio: 'inherit' });
  probeBinary(true);
  proxy = await fakeProxy(() => undefined);
  agent = makeCgroup();
  pinRoot = makePinRoot();
});

after(async () => {
  for (const d of daemons) d.kill('SIGKILL');
  detachPinned(pinRoot);
  agent?.remove();
  await proxy?.close();
});

test('the shipped systemd unit restarts well inside the TTL and its watchdog fires within it', () => {
  const restart = spanMs(unitValue('RestartSec'));
  const watchdog = spanMs(unitValue('WatchdogSec'));
  assert.ok(restart < TTL_MS / 2, `RestartSec ${restart} ms must be well below the ${TTL_MS} ms TTL`);
  assert.ok(watchdog <= TTL_MS, `WatchdogSec ${watchdog} ms must not exceed the ${TTL_MS} ms TTL`);
});

test('kill -9 of the daemon: managed connects get EPERM within TTL + one heartbeat', async (t) => {
  const { child, ready } = await startDaemon();
  assert.equal(ready.mode, 'cgroup-only');
  const watcher = runProbe(['cg', agent.procs, 'until', 'denied', '5000', '203.0.113.9', '80'], { timeoutMs: 10_000 });
  await sleep(300);
  const killedNs = await kill9(child);
  const r = (await watcher).at(-1) as { ok: boolean; mono_ns?: number; attempts?: number } | undefined;
  assert.ok(r?.ok && r.mono_ns, `no EPERM within 5 s of SIGKILL: ${JSON.stringify(r)}`);
  const windowMs = Number(BigInt(r.mono_ns) - killedNs) / 1e6;
  t.diagnostic(`fail-closed window ${windowMs.toFixed(0)} ms after SIGKILL (bound ${BOUND_MS} ms, ${r.attempts} connects)`);
  assert.ok(windowMs <= BOUND_MS, `EPERM ${windowMs.toFixed(0)} ms after SIGKILL, more than TTL + heartbeat (${BOUND_MS} ms)`);
});

test('a restart after RestartSec re-adopts the pins and managed traffic is never denied longer than TTL + one heartbeat', async (t) => {
  const restartMs = spanMs(unitValue('RestartSec'));
  // The previous test left the programs pinned and the daemon dead (failing closed): a restart re-adopts.
  const first = await startDaemon();
  assert.equal(first.ready.adopted, true, 'a restarted daemon re-adopts the pinned programs');
  await sleep(HEARTBEAT_MS * 2);
  const watcher = runProbe(['cg', agent.procs, 'watch', '4000', '203.0.113.10', '80'], { timeoutMs: 10_000 });
  await sleep(500);
  const killedNs = await kill9(first.child);
  await sleep(restartMs);
  const second = await startDaemon();
  const restartedMs = Number(process.hrtime.bigint() - killedNs) / 1e6;
  const w = (await watcher).at(-1) as unknown as {
    attempts: number;
    denied: number;
    other_errors: number;
    longest_denied_ns: number;
    still_denied: boolean;
  };
  const longestMs = w.longest_denied_ns / 1e6;
  t.diagnostic(
    `restart ready ${restartedMs.toFixed(0)} ms after SIGKILL (attach ${second.ready.ms} ms, adopted ${second.ready.adopted}); ` +
      `${w.denied}/${w.attempts} connects denied, longest denied run ${longestMs.toFixed(0)} ms (bound ${BOUND_MS} ms)`,
  );
  assert.equal(second.ready.adopted, true);
  assert.equal(w.other_errors, 0, 'every connect was either redirected or denied with EPERM');
  assert.equal(w.still_denied, false, 'traffic flows again after the restart');
  assert.ok(longestMs <= BOUND_MS, `managed traffic denied for ${longestMs.toFixed(0)} ms across the restart (bound ${BOUND_MS} ms)`);
});
