// `lilith demo` as CI runs it (`npm start` after the bootstrap), as root: every
// step's outcome is read back from what the real parts left behind — the
// prover's JSON reports and exit codes, the policy repository's history, the
// signed capsules, the enforcers' audit logs and /status documents, a /metrics
// scrape — never from the demo's narration.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { AuditEvent, CapsuleAuditEvent, DecisionAuditEvent, KernelAuditEvent } from '../../enforcer/audit/event.js';
import type { DaemonStatus } from '../../enforcer/daemon/index.js';
import type { Outcome } from '../../cli/demo/context.js';
import { exposedFamilies, queriedFamilies, readDashboard, REPO_ROOT } from './dashboard-metrics.js';

const CODER = 'spiffe://corp.example/agents/coder';
const FLEET = ['enforcer-1', 'enforcer-2', 'enforcer-3'];

let skip: string | false = false;
let work = '';
let exitCode: number | null = null;
let demoPid = 0;
let stdout = '';
let outcome: Outcome;
let wallSeconds = 0;

const audit = (name: string): AuditEvent[] =>
  readFileSync(join(work, 'fleet', name, 'audit.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as AuditEvent);
const status = (name: string, label: string): DaemonStatus =>
  JSON.parse(readFileSync(join(work, 'fleet', name, `status-${label}.json`), 'utf8')) as DaemonStatus;
const agentDecisions = (): DecisionAuditEvent[] =>
  audit('enforcer-1').filter(
    (e): e is DecisionAuditEvent => e.kind === 'decision' && e.spiffe_id === CODER && e.action !== 'Action::"mcp_session"',
  );
const git = (...args: string[]) => execFileSync('git', ['-C', join(work, 'repo'), ...args], { encoding: 'utf8' }).trim();

before(async () => {
  if (process.getuid?.() !== 0) {
    skip = 'the demo attaches kernel programs: run as root (CI does)';
    return;
  }
  for (const bin of ['bpf/build/cgroup_connect.bpf.o', 'confine/native/build/escape-probe']) {
    if (!existsSync(join(REPO_ROOT, bin))) {
      skip = `${bin} is not built (npm run bootstrap)`;
      return;
    }
  }
  try {
    execFileSync('cvc5', ['--version'], { stdio: 'ignore' });
  } catch {
    skip = 'cvc5 is not installed (the bootstrap installs it)';
    return;
  }
  work = await mkdtemp(join(tmpdir(), 'lilith-demo-test-'));
  const started = Date.now();
  const child = spawn(process.execPath, [join(REPO_ROOT, 'dist/cli/main.js'), 'demo', '--work', work], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  demoPid = child.pid ?? 0;
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stdout += c.toString()));
  const killer = setTimeout(() => child.kill('SIGINT'), 100_000);
  exitCode = await new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  clearTimeout(killer);
  wallSeconds = (Date.now() - started) / 1000;
  outcome = JSON.parse(readFileSync(join(work, 'outcome.json'), 'utf8')) as Outcome;
});

after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

test('lilith demo runs every step on this machine and exits 0', (t) => {
  if (skip) return t.skip(skip);
  t.diagnostic(`demo wall time ${wallSeconds.toFixed(1)} s (its own clock: ${outcome.seconds} s)`);
  assert.equal(exitCode, 0, stdout.slice(-4000));
  assert.deepEqual(outcome.skipped, [], 'nothing skipped as root with cgroup v2 and cvc5');
});

test('step 2: the proof gate rejects the escalating PR (exit 1, a counterexample) and proves the safe one (exit 0), which alone is merged', (t) => {
  if (skip) return t.skip(skip);
  const [esc, safe] = outcome.gate;
  assert.equal(esc.exit, 1);
  assert.equal(safe.exit, 0);
  const escReport = JSON.parse(readFileSync(esc.report, 'utf8')) as { verdict: string; escalations: Array<{ action: string }> };
  assert.equal(escReport.verdict, 'escalation');
  assert.ok(escReport.escalations.length > 0, 'a counterexample');
  assert.match(JSON.stringify(escReport.escalations), /run_command/);
  assert.equal((JSON.parse(readFileSync(safe.report, 'utf8')) as { verdict: string }).verdict, 'proven');
  const merges = git('log', 'main', '--merges', '--format=%s');
  assert.match(merges, /Merge pull request #2/);
  assert.doesNotMatch(merges, /Merge pull request #1/);
  assert.throws(() => git('merge-base', '--is-ancestor', esc.branch, 'main'), 'the escalation never reaches main');
});

test('step 3: the released capsules are signed from main, carry the gate report digest, and watermarks increase', (t) => {
  if (skip) return t.skip(skip);
  assert.deepEqual(
    outcome.releases.map((r) => [r.watermark, r.sign_exit, r.publish_exit]),
    [
      [1, 0, 0],
      [2, 0, 0],
    ],
  );
  for (const [i, r] of outcome.releases.entries()) {
    const env = JSON.parse(readFileSync(r.capsule, 'utf8')) as { payload: string };
    const payload = JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8')) as { proof_digest: string; source_commit: string };
    const report = outcome.gate[i + 1].report;
    assert.equal(payload.proof_digest, createHash('sha256').update(readFileSync(report)).digest('hex'));
    assert.equal(payload.source_commit, r.source_commit);
    assert.doesNotThrow(() => git('merge-base', '--is-ancestor', r.source_commit, 'main'));
  }
});

test('step 4: three enforcers enforce the same watermark and digest; the first with the kernel programs and the proxy', (t) => {
  if (skip) return t.skip(skip);
  for (const [label, rel] of [
    ['w1', outcome.releases[0]],
    ['w2', outcome.releases[1]],
  ] as const) {
    for (const name of FLEET) {
      const s = status(name, label);
      assert.equal(s.active?.watermark, rel.watermark, `${name} at ${label}`);
      assert.equal(s.active?.digest, rel.digest, `${name} at ${label}`);
      assert.equal(s.ready, true);
    }
  }
  const first = status('enforcer-1', 'w1');
  assert.notEqual(first.kernel.mode, 'off');
  assert.ok(first.kernel.heartbeat_age_ms !== null);
  assert.equal((first.dataplane as { enabled: boolean }).enabled, true);
  for (const name of ['enforcer-2', 'enforcer-3']) {
    assert.equal(status(name, 'w1').kernel.mode, 'off');
    assert.equal((status(name, 'w1').dataplane as { enabled: boolean }).enabled, false);
  }
});

test('step 5: the agent — clean read allowed, credential read taints, exfiltration denied, direct HTTP denied, UDP and raw socket EPERM', (t) => {
  if (skip) return t.skip(skip);
  assert.equal(outcome.agent?.exit, 0);
  const d = agentDecisions();
  const [clean, cred, exfil] = d;
  assert.deepEqual(
    [clean.action, clean.decision, clean.taint_before, clean.taint_after, clean.watermark],
    ['Action::"read_file"', 'allow', '0x0000000000000000', '0x0000000000000000', 1],
  );
  assert.deepEqual([cred.action, cred.decision, cred.taint_after], ['Action::"read_file"', 'allow', '0x0000000000000008']);
  assert.deepEqual([exfil.action, exfil.decision], ['Action::"http_post"', 'deny']);
  assert.ok(exfil.policies.includes('taint-blocks-egress'), exfil.policies.join());
  const direct = d.find((e) => e.protocol === 'http');
  assert.ok(direct, 'the direct POST was redirected by the kernel to the proxy and decided');
  assert.deepEqual([direct.action, direct.decision, direct.destination?.startsWith('127.0.0.3:')], ['Action::"POST"', 'deny', true]);
  assert.equal(direct.pid, clean.pid, 'the kernel attributed the connection to the agent process');
  const kernel = audit('enforcer-1').filter((e): e is KernelAuditEvent => e.kind === 'kernel' && e.event === 'deny');
  assert.ok(
    kernel.some((e) => e.hook === 'sendmsg4' && e.reason === 'udp' && e.pid === clean.pid),
    `a kernel EPERM for the UDP datagram: ${JSON.stringify(kernel)}`,
  );
  // seccomp refuses the raw socket before any BPF hook sees it: only the agent knows the errno.
  const raw = outcome.agent?.lines.find((l) => l.step === 'raw-socket');
  assert.deepEqual([raw?.ok, raw?.errno], [false, 1]);
  const udp = outcome.agent?.lines.find((l) => l.step === 'udp');
  assert.equal(udp?.error, 'EPERM');
  assert.deepEqual(outcome.exfil_received, { http: 0, udp: 0 }, 'nothing reached the attacker');
});

test('step 6: the hot swap — every enforcer activates watermark 2 while the agent runs; its next call is decided by it; zero failed decisions', (t) => {
  if (skip) return t.skip(skip);
  for (const name of FLEET) {
    const caps = audit(name).filter((e): e is CapsuleAuditEvent => e.kind === 'capsule');
    assert.deepEqual(
      caps.map((c) => [c.result, c.watermark]),
      [
        ['activated', 1],
        ['activated', 2],
      ],
      name,
    );
  }
  const d = agentDecisions().filter((e) => e.action === 'Action::"list_directory"');
  const firstW2 = d.findIndex((e) => e.watermark === 2);
  assert.ok(firstW2 > 0, 'list_directory calls before and after the swap');
  assert.ok(
    d.slice(0, firstW2).every((e) => e.decision === 'allow' && e.watermark === 1 && e.policies.includes('read-tools')),
    'before: allowed by read-tools',
  );
  assert.deepEqual([d[firstW2].decision, d[firstW2].policies], ['deny', ['credentials-quarantine']]);
  assert.equal(firstW2, d.length - 1, 'the agent stopped at the first denial: no call after it');
  const activated = audit('enforcer-1').find((e): e is CapsuleAuditEvent => e.kind === 'capsule' && e.watermark === 2)!;
  assert.ok(Date.parse(d[firstW2].time) >= Date.parse(activated.time), 'decided after the activation');
  // Zero failed decisions: every decision of the agent was made by a policy (no errors, no refusal reason).
  assert.deepEqual(
    agentDecisions().filter((e) => e.errors.length > 0 || e.reason !== undefined),
    [],
  );
  const swap = outcome.agent?.lines.find((l) => l.step === 'swap') as { failed: number; denied: number; allowed: number } | undefined;
  assert.deepEqual([swap?.failed, swap?.denied], [0, 1]);
  assert.equal(swap?.allowed, firstW2);
});

test('step 7: a real /metrics scrape exports every metric the Grafana dashboard queries', (t) => {
  if (skip) return t.skip(skip);
  const scrape = readFileSync(join(work, 'fleet', 'enforcer-1', 'metrics.txt'), 'utf8');
  const exposed = exposedFamilies(scrape);
  assert.deepEqual(
    queriedFamilies(readDashboard()).filter((n) => !exposed.has(n)),
    [],
  );
  assert.match(scrape, new RegExp(`lilith_policy_decisions_total\\{agent="${CODER}",decision="deny",policy="credentials-quarantine"\\} 1`));
  assert.match(scrape, /lilith_kernel_denials_total\{hook="sendmsg4",reason="udp"\} [1-9]/);
});

test('cleanup: no enforcer, pin directory or cgroup of the demo is left', (t) => {
  if (skip) return t.skip(skip);
  for (const name of FLEET) {
    const pid = status(name, 'w2').pid;
    assert.throws(() => process.kill(pid, 0), /ESRCH/, `${name} (pid ${pid}) stopped`);
  }
  assert.equal(existsSync(`/sys/fs/bpf/lilith-demo-${demoPid}`), false);
  const cgroupRoot = existsSync('/sys/fs/cgroup/cgroup.controllers') ? '/sys/fs/cgroup' : '/sys/fs/cgroup/unified';
  assert.equal(existsSync(join(cgroupRoot, `lilith-demo-${demoPid}`)), false);
});
