// npm run redteam -- --vm: the runner's report becomes one line per attempt per
// kernel. The fixture is the runner's own format (vm-tests/runner.ts printGroup),
// with check names and details as vm-tests/scenarios/redteam.ts writes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatVmLine, vmReportLines } from '../../redteam/vm-report.js';

const REPORT = `[vm] 6.1.0-57-amd64: booting lsm=landlock,bpf for redteam, kernel-guard

== 6.1.0-57-amd64 (lsm=landlock,bpf): PASS  boot 7.3s  scenarios 228.3s  total 235.7s
   ok   redteam (180.2s) on 6.1.0-57-amd64
        ok   tfo-exfil [kernel (cgroup BPF)] TCP Fast Open: sendto(MSG_FASTOPEN) connects without connect(): BLOCKED: nothing reached the tcp listener; client saw Connection reset by peer
        ok   abstract-unix [landlock] connect to a local daemon on an abstract unix socket: KERNEL-GAP (this kernel's Landlock ABI 3 < 6: the landlock layer cannot block it here): CONNECTED
        ok   sigstop-daemon [kernel (BPF-LSM)] SIGSTOP the enforcer from a managed, unconfined process: BLOCKED: 0/1 succeeded (last: Operation not permitted); enforcer state S
   ok   kernel-guard (8.4s) on 6.1.0-57-amd64
        ok   the guard hooks are attached: active=ptrace_access_check,task_kill
        ok   a managed process cannot signal the enforcer (SIGCONT): kill: errno 1 Operation not permitted pid=255

== 6.12.118+deb12-amd64 (lsm=landlock,bpf): FAIL  boot 5.4s  scenarios 184.0s  total 189.4s
   FAIL redteam (150.0s) on 6.12.118+deb12-amd64
        FAIL exec-other-identity [kernel (BPF-LSM)] exec a binary allowlisted for another identity (the native agent runs the coder's tool): NOT BLOCKED: the coder ran it; the native agent ran it
   FAIL kernel-guard (5.0s) on 6.12.118+deb12-amd64
        ok   the guard hooks are attached: active=…
        FAIL a managed process cannot signal the enforcer (SIGCONT): kill: ok pid=255; event none

kernel                      lsm       boot     scenarios  result
6.1.0-57-amd64              bpf       7.3s     228.3s     PASS
`;

test('one line per red-team attempt per kernel, one per other scenario per kernel', () => {
  const lines = vmReportLines(REPORT);
  assert.deepEqual(
    lines.map((l) => [l.verdict, l.kernel, l.id]),
    [
      ['BLOCKED', '6.1.0-57-amd64', 'tfo-exfil'],
      ['KERNEL-GAP', '6.1.0-57-amd64', 'abstract-unix'],
      ['BLOCKED', '6.1.0-57-amd64', 'sigstop-daemon'],
      ['PASS', '6.1.0-57-amd64', 'kernel-guard'],
      ['NOT BLOCKED', '6.12.118+deb12-amd64', 'exec-other-identity'],
      ['FAIL', '6.12.118+deb12-amd64', 'kernel-guard'],
    ],
  );
  assert.equal(lines[0]!.detail, 'nothing reached the tcp listener; client saw Connection reset by peer');
  assert.equal(lines[5]!.detail, '1/2 checks (lsm=landlock,bpf)');
  assert.match(formatVmLine(lines[2]!), /^BLOCKED {6}6\.1\.0-57-amd64 {9}sigstop-daemon {11}0\/1 succeeded/);
});

test('a report without groups yields no lines (main.ts then prints the raw report)', () => {
  assert.deepEqual(vmReportLines('[vm] the kernel did not boot\n'), []);
});
