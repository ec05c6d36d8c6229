// The VM runner's failure paths, run for real: qemu, Debian kernels, the initramfs and the guest.
// Each VM case boots one small VM (6.12, about 10-25 s under TCG). Skipped with LILITH_SKIP_VM=1
// (CI's unit job: the kernel matrix runs in .github/workflows/vm-tests.yml instead).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';

const root = resolve(import.meta.dirname, '..', '..', '..');
const runner = join(root, 'dist', 'vm-tests', 'runner.js');
const fixtures = join(root, 'dist', 'test', 'vm-tests', 'fixtures');
const skipVm = process.env.LILITH_SKIP_VM === '1' ? 'LILITH_SKIP_VM=1: VMs run in the vm-tests workflow' : false;

function runRunner(args: string[], timeoutMs = 240_000) {
  const r = spawnSync(process.execPath, [runner, ...args], { cwd: root, encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL' });
  assert.equal(r.signal, null, `runner was killed (${r.signal}): it must end on its own timeouts\n${r.stdout}\n${r.stderr}`);
  return { code: r.status, out: `${r.stdout}\n${r.stderr}` };
}

test('--help prints the flags and exits 0', () => {
  const r = runRunner(['--help']);
  assert.equal(r.code, 0);
  for (const flag of ['--kernel', '--kernel-image', '--scenario', '--no-bpf-lsm', '--timeout', '--keep'])
    assert.match(r.out, new RegExp(flag));
});

test('an unknown kernel series is a usage error naming the series', () => {
  const r = runRunner(['--kernel', '5.4']);
  assert.equal(r.code, 2);
  assert.match(r.out, /--kernel 5\.4: unknown series/);
});

test('an unknown scenario is an error listing the known ones', () => {
  const r = runRunner(['--scenario', 'no-such-scenario', '--kernel', '6.12']);
  assert.equal(r.code, 2);
  assert.match(r.out, /unknown scenario "no-such-scenario" \(known: .*smoke/);
});

test('--list shows every scenario with its boot LSM list', () => {
  const r = runRunner(['--list', '--scenarios-dir', fixtures]);
  assert.equal(r.code, 0);
  assert.match(r.out, /smoke\s+\[bpf\]/);
  assert.match(r.out, /no-bpf-lsm\s+\[no-bpf\]/);
  assert.match(r.out, /broken-check\s+\[bpf\]/);
});

test('a file that is not a kernel fails clearly instead of hanging', { skip: skipVm }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'lilith-vmtest-'));
  try {
    const bogus = join(dir, 'not-a-kernel');
    writeFileSync(bogus, 'this is not a bzImage\n'.repeat(100));
    const r = runRunner(['--kernel-image', bogus, '--scenario', 'smoke', '--boot-timeout', '60']);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /FAIL qemu exited \(code \d+\) before the scenario runner started: the kernel did not boot/);
    assert.match(r.out, /---- guest console/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a boot that exceeds --boot-timeout is killed and reported', { skip: skipVm }, () => {
  const r = runRunner(['--kernel', '6.12', '--scenario', 'smoke', '--boot-timeout', '1']);
  assert.equal(r.code, 1, r.out);
  assert.match(r.out, /FAIL kernel did not reach the scenario runner within 1s/);
  assert.match(r.out, /---- guest console/);
});

test('a kernel image without 9p modules stops with the reason, not a hang', { skip: skipVm }, () => {
  const cache = join(root, '.cache', 'vm', 'kernels');
  const rel = existsSync(cache)
    ? readdirSync(cache).find((d) => d.startsWith('6.12.') && existsSync(join(cache, d, 'meta.json')))
    : undefined;
  assert.ok(rel, 'the 6.12 kernel is cached by the boot-timeout test');
  const r = runRunner(['--kernel-image', join(cache, rel, 'vmlinuz'), '--scenario', 'smoke']);
  assert.equal(r.code, 1, r.out);
  assert.match(
    r.out,
    /FAIL guest init: cannot mount the results share over 9p: no --modules-dir given: the kernel must have virtio-pci, 9pnet_virtio and 9p built in/,
  );
});

test('a failing check and a hanging scenario fail the run with the guest console and logs', { skip: skipVm }, () => {
  const r = runRunner([
    '--kernel',
    '6.12',
    '--scenarios-dir',
    fixtures,
    '--scenario',
    'broken-check',
    '--scenario',
    'hangs',
    '--scenario',
    'passes',
    '--timeout',
    '5',
  ]);
  assert.equal(r.code, 1, r.out);
  assert.match(r.out, /FAIL deliberately failing check: expected failure from broken-check fixture/);
  assert.match(r.out, /FAIL hangs/);
  assert.match(r.out, /scenario hangs timed out after 5s/);
  assert.match(r.out, /ok   passes .*\n\s+ok   booted without bpf in the LSM list/);
  assert.match(r.out, /---- guest console \(6\.12\.[^,]+, lsm=bpf\) ----[\s\S]*not ok \d+ - broken-check: deliberately failing check/);
  assert.match(r.out, /---- broken-check\.log ----\nfixture log line from broken-check/);
  assert.match(r.out, /6\.12\.\S+\s+no-bpf\s+\S+s\s+\S+s\s+PASS/);
  assert.match(r.out, /6\.12\.\S+\s+bpf\s+\S+s\s+\S+s\s+FAIL/);
});

test("a scenario's own minimum time survives loading and wins over a smaller --timeout", async () => {
  const { loadScenario, timeoutSOf } = await import('../../vm-tests/registry.js');
  const redteam = await loadScenario('redteam');
  assert.equal(redteam.timeoutS, 900);
  assert.equal(timeoutSOf(redteam, 180), 900);
  assert.equal(timeoutSOf(redteam, 1200), 1200);
  assert.equal(timeoutSOf(await loadScenario('smoke'), 180), 180);
});
