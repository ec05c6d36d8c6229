// `npm run redteam`: every escape attempt Lilith knows, run for real, each
// reported as blocked or not. Exit 1 if anything expected to be blocked here
// got through. `--vm` also runs the BPF-LSM scenarios on the VM kernels.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { ATTEMPTS, failureDetail, kernelGap, type Outcome } from './attempts.js';
import { startRedteamEnv } from './env.js';
import { formatVmLine, vmReportLines } from './vm-report.js';

const argv = process.argv.slice(2);
if (argv.includes('--help')) {
  process.stdout.write(`usage: npm run redteam -- [--only ID,...] [--json FILE] [--vm]

Runs each escape attempt against a real enforcer on this host (kernel programs in
the mode this kernel allows, dataplane, lilith run confinement) and reports it
blocked or not. Attempts that need BPF-LSM are run on the VM kernels with --vm.
ids: ${ATTEMPTS.map((a) => a.id).join(', ')}
`);
  process.exit(0);
}
const only = argv.includes('--only') ? argv[argv.indexOf('--only') + 1].split(',') : null;
const jsonOut = argv.includes('--json') ? argv[argv.indexOf('--json') + 1] : null;

const log = (line: string) => process.stderr.write(`[redteam] ${line}\n`);
const env = await startRedteamEnv(log);
const results: Array<{ id: string; what: string; layer: string; expect: string; note?: string; kernelGap?: string } & Outcome> = [];
let failed = false;
try {
  for (const a of ATTEMPTS) {
    if (only && !only.includes(a.id)) continue;
    let outcome: Outcome;
    try {
      outcome = await a.run(env);
    } catch (err) {
      outcome = { blocked: false, detail: failureDetail(err) };
    }
    const gap = outcome.blocked ? null : kernelGap(a, env);
    const verdict = outcome.blocked
      ? 'BLOCKED'
      : gap
        ? 'KERNEL-GAP'
        : a.expect === 'vm-only'
          ? 'HOST-GAP'
          : a.expect === 'open'
            ? 'OPEN'
            : 'NOT BLOCKED';
    if (!outcome.blocked && a.expect === 'blocked' && !gap) failed = true;
    process.stdout.write(`${verdict.padEnd(12)} ${a.id.padEnd(24)} [${a.layer}] ${a.what}\n${' '.repeat(13)}${outcome.detail}\n`);
    if (gap) process.stdout.write(`${' '.repeat(13)}${gap}\n`);
    if (!outcome.blocked && a.expect === 'vm-only')
      process.stdout.write(
        `${' '.repeat(13)}needs BPF-LSM, refused by this host's lockdown: covered on the VM kernels (--vm)${a.note ? `; ${a.note}` : ''}\n`,
      );
    if (!outcome.blocked && a.expect === 'open' && a.note) process.stdout.write(`${' '.repeat(13)}known gap: ${a.note}\n`);
    results.push({
      id: a.id,
      what: a.what,
      layer: a.layer,
      expect: a.expect,
      note: a.note,
      ...outcome,
      ...(gap ? { kernelGap: gap } : {}),
    });
  }
} finally {
  await env.close();
}

if (argv.includes('--vm')) {
  // The same attempts inside BPF-LSM kernels (vm-tests/scenarios/redteam.ts: one check per
  // attempt per kernel, printed by the runner), plus the exec/W^X/identity and fail-closed scenarios.
  log('running every attempt again on the VM kernels (BPF-LSM)');
  const r = spawnSync(
    process.execPath,
    [
      'dist/vm-tests/runner.js',
      ...['redteam', 'kernel-lsm', 'kernel-guard', 'kernel-exec-identity', 'kernel-failclosed', 'no-landlock'].flatMap((s) => [
        '--scenario',
        s,
      ]),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  );
  // One line per attempt per kernel (and per other scenario per kernel); the full report on failure.
  const lines = vmReportLines(r.stdout ?? '');
  for (const l of lines) process.stdout.write(`${formatVmLine(l)}\n`);
  if (r.status !== 0 || !lines.length) process.stdout.write(r.stdout ?? '');
  results.push({
    id: 'vm-bpf-lsm',
    what: 'every attempt, exec allowlists (shared and per identity), W^X, the daemon guard, identity inheritance, fail-closed and no-Landlock refusal under BPF-LSM (6.1, 6.12)',
    layer: 'kernel (BPF-LSM)',
    expect: 'blocked',
    blocked: r.status === 0,
    detail: `vm-tests exit ${r.status}`,
  });
  if (r.status !== 0) failed = true;
}

const blocked = results.filter((r) => r.blocked).length;
process.stdout.write(`\n${blocked}/${results.length} attempts blocked on this host${failed ? '; SOME EXPECTED BLOCKS FAILED' : ''}\n`);
if (jsonOut) writeFileSync(jsonOut, JSON.stringify(results, null, 2));
process.exit(failed ? 1 : 0);
