#!/usr/bin/env node
// Host side of the VM tests (`npm run test:vm`): fetches kernels, builds the initramfs,
// boots each (kernel, LSM list) under qemu TCG, runs the scenarios in the guest and reports
// boot time, scenario time and result per kernel. Exit status 1 if anything failed.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { run } from './exec.js';
import { boot, type BootOutcome } from './qemu.js';
import { buildInitramfs } from './initramfs.js';
import { customKernel, debianKernel, DEBIAN_SERIES, type KernelArtifacts } from './kernels.js';
import { bootLsmOf, loadScenario, scenarioNames, timeoutSOf } from './registry.js';
import { LSM_LIST, type BootLsm, type ScenarioReport } from './scenario.js';
import { ensureTools } from './tools.js';

const projectRoot = realpathSync(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..'));

const USAGE = `usage: npm run test:vm -- [options]

Boots real kernels under qemu (TCG) and runs the VM scenarios inside them.
With no options: every scenario on every Debian kernel (${Object.keys(DEBIAN_SERIES).join(', ')}).

  --kernel SERIES        Debian kernel series to boot (${Object.keys(DEBIAN_SERIES).join('|')}); repeatable
  --kernel-image PATH    boot this bzImage instead (e.g. an lvh kernel image); repeatable
  --modules-dir PATH     lib/modules/<release> tree for --kernel-image (omit if 9p is built in)
  --scenario NAME        run only this scenario; repeatable
  --scenarios-dir DIR    also load compiled scenarios from DIR (inside the project, or not under /tmp or /run)
  --no-bpf-lsm           boot every scenario with lsm=landlock (bpf absent from the LSM list)
  --timeout SECONDS      per-scenario timeout in the guest (default 180)
  --boot-timeout SECONDS time allowed from qemu start to the scenario runner (default 120)
  --append ARGS          extra kernel command line arguments
  --accel tcg|kvm        qemu accelerator (default tcg; kvm needs a working /dev/kvm)
  --keep                 keep the work directory (console logs, reports) and print its path
  --verbose              stream the guest console while it runs
  --list                 list scenarios and exit
  --help                 this text
`;

interface Options {
  kernels: string[];
  images: string[];
  modulesDir?: string;
  scenarios: string[];
  scenarioDirs: string[];
  accel: 'tcg' | 'kvm';
  append: string;
  noBpfLsm: boolean;
  timeoutS: number;
  bootTimeoutS: number;
  keep: boolean;
  verbose: boolean;
  list: boolean;
}

function parse(argv: string[]): Options | null {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      kernel: { type: 'string', multiple: true, default: [] },
      'kernel-image': { type: 'string', multiple: true, default: [] },
      'modules-dir': { type: 'string' },
      scenario: { type: 'string', multiple: true, default: [] },
      'scenarios-dir': { type: 'string', multiple: true, default: [] },
      accel: { type: 'string', default: 'tcg' },
      append: { type: 'string', default: '' },
      'no-bpf-lsm': { type: 'boolean', default: false },
      timeout: { type: 'string', default: '180' },
      'boot-timeout': { type: 'string', default: '120' },
      keep: { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
      list: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) return null;
  if (positionals.length) throw new Error(`unexpected argument ${positionals[0]}`);
  const seconds = (flag: string, v: string) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${flag} must be a positive number of seconds, got ${JSON.stringify(v)}`);
    return n;
  };
  for (const k of values.kernel)
    if (!DEBIAN_SERIES[k])
      throw new Error(`--kernel ${k}: unknown series (use ${Object.keys(DEBIAN_SERIES).join(' or ')}, or --kernel-image PATH)`);
  if (values['modules-dir'] && !values['kernel-image'].length) throw new Error('--modules-dir only applies to --kernel-image');
  if (values.accel !== 'tcg' && values.accel !== 'kvm') throw new Error(`--accel must be tcg or kvm, got ${JSON.stringify(values.accel)}`);
  const scenarioDirs = values['scenarios-dir'].map((d) => {
    const abs = realpathSync(resolve(d));
    // The guest mounts fresh tmpfs/proc/sys/dev/run over these, hiding the host's content;
    // the project tree itself is bound back (init.sh), so anything inside it stays visible.
    const insideProject = abs === projectRoot || abs.startsWith(`${projectRoot}/`);
    if (!insideProject && /^\/(tmp|run|proc|sys|dev)(\/|$)/.test(abs))
      throw new Error(`--scenarios-dir ${abs}: not visible in the guest (its /tmp, /run, /proc, /sys, /dev are its own)`);
    if (/[\s,]/.test(abs)) throw new Error(`--scenarios-dir ${abs}: path must not contain whitespace or commas`);
    return abs;
  });
  return {
    kernels: values.kernel,
    images: values['kernel-image'],
    modulesDir: values['modules-dir'],
    scenarios: values.scenario,
    scenarioDirs,
    accel: values.accel,
    append: values.append,
    noBpfLsm: values['no-bpf-lsm'],
    timeoutS: seconds('timeout', values.timeout),
    bootTimeoutS: seconds('boot-timeout', values['boot-timeout']),
    keep: values.keep,
    verbose: values.verbose,
    list: values.list,
  };
}

const log = (m: string) => process.stderr.write(`[vm] ${m}\n`);

/**
 * Native artifacts scenarios use; make is a no-op when they are up to date. A failed build is
 * reported and the run goes on: each scenario checks for the objects it needs and fails by name.
 */
function buildNative(): void {
  for (const dir of ['bpf', 'vm-tests/loader']) {
    if (!existsSync(join(projectRoot, dir, 'Makefile'))) continue;
    try {
      run('make', ['-s', '-C', join(projectRoot, dir)], { timeoutMs: 300_000 });
    } catch (err) {
      log(`WARNING: make -C ${dir} failed; scenarios needing its output will fail or use stale files:\n${(err as Error).message}`);
    }
  }
}

interface GroupResult {
  kernel: string;
  bootLsm: BootLsm;
  outcome: BootOutcome;
  reports: ScenarioReport[];
  missing: string[];
  ok: boolean;
  consoleLog: string;
  resultsDir: string;
}

async function runGroup(
  kernel: KernelArtifacts,
  initrd: string,
  bootLsm: BootLsm,
  names: string[],
  opts: Options,
  dir: string,
): Promise<GroupResult> {
  const resultsDir = join(dir, `results-${bootLsm}`);
  mkdirSync(resultsDir, { recursive: true });
  let guestTimeout = 30;
  for (const n of names) guestTimeout += timeoutSOf(await loadScenario(n, opts.scenarioDirs), opts.timeoutS);
  const append = [
    'console=ttyS0',
    `lsm=${LSM_LIST[bootLsm]}`,
    'panic=-1',
    'loglevel=4',
    'rdinit=/init',
    `lilith.root=${projectRoot}`,
    `lilith.scenarios=${names.join(',')}`,
    `lilith.bootlsm=${bootLsm}`,
    `lilith.timeout=${guestTimeout}`,
    `lilith.scenariotimeout=${opts.timeoutS}`,
    `lilith.nodedir=${dirname(process.execPath)}`,
    ...(opts.scenarioDirs.length ? [`lilith.scenariosdirs=${opts.scenarioDirs.join(',')}`] : []),
    ...(opts.append ? [opts.append] : []),
  ].join(' ');
  const consoleLog = join(dir, `console-${bootLsm}.log`);
  log(`${kernel.label}: booting lsm=${LSM_LIST[bootLsm]} for ${names.join(', ')}`);
  const bootOnce = () =>
    boot({
      kernel: kernel.vmlinuz,
      initrd,
      append,
      resultsDir,
      consoleLog,
      bootTimeoutMs: opts.bootTimeoutS * 1000,
      totalTimeoutMs: (opts.bootTimeoutS + guestTimeout + 30) * 1000,
      accel: opts.accel,
      onLine: opts.verbose ? (l) => process.stderr.write(`  | ${l}\n`) : undefined,
    });
  let outcome = await bootOnce();
  // Multi-threaded TCG occasionally trips the guest kernel's own boot-time code
  // patching (an int3 oops in early initcalls, before any of our code runs). That
  // is the emulator, not the scenario: boot once more, and say so.
  if (!outcome.booted && !outcome.killed && !outcome.fatal && EARLY_OOPS.test(outcome.console)) {
    log(
      `${kernel.label}: the guest kernel crashed while booting (${EARLY_OOPS.exec(outcome.console)![0].trim()}), before the scenario runner; booting again`,
    );
    outcome = await bootOnce();
  }
  const reports: ScenarioReport[] = [];
  const missing: string[] = [];
  for (const n of names) {
    const f = join(resultsDir, `${n}.json`);
    if (existsSync(f)) reports.push(JSON.parse(readFileSync(f, 'utf8')) as ScenarioReport);
    else missing.push(n);
  }
  const status = existsSync(join(resultsDir, 'status')) ? readFileSync(join(resultsDir, 'status'), 'utf8').trim() : null;
  const ok = outcome.booted && !outcome.killed && !outcome.fatal && status === '0' && !missing.length && reports.every((r) => r.ok);
  return { kernel: kernel.label, bootLsm, outcome, reports, missing, ok, consoleLog, resultsDir };
}

const EARLY_OOPS = /(Oops:|Kernel panic|BUG:)[^\n]*/;

/** Console text without carriage returns and the firmware's terminal escapes (cursor, clear screen). */
const printable = (text: string) => text.replace(/\r/g, '').replace(/\x1b(\[[0-9;?]*[A-Za-z]|c)/g, '');

const secs = (ms: number | null) => (ms === null ? '-' : `${(ms / 1000).toFixed(1)}s`);

function printGroup(g: GroupResult): void {
  const o = g.outcome;
  process.stdout.write(
    `\n== ${g.kernel} (lsm=${LSM_LIST[g.bootLsm]}): ${g.ok ? 'PASS' : 'FAIL'}  boot ${secs(o.bootMs)}  scenarios ${secs(o.scenarioMs)}  total ${secs(o.totalMs)}\n`,
  );
  for (const r of g.reports) {
    process.stdout.write(`   ${r.ok ? 'ok  ' : 'FAIL'} ${r.scenario} (${secs(r.durationMs)}) on ${r.kernelRelease}\n`);
    for (const c of r.checks) process.stdout.write(`        ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}\n`);
    if (r.error) process.stdout.write(`        FAIL ${r.error}\n`);
  }
  for (const m of g.missing) process.stdout.write(`   FAIL ${m}: no report from the guest\n`);
  if (o.killed) process.stdout.write(`   FAIL ${o.killed}\n`);
  else if (!o.booted && !o.fatal)
    process.stdout.write(`   FAIL qemu exited (code ${o.exitCode}) before the scenario runner started: the kernel did not boot\n`);
  if (o.fatal) process.stdout.write(`   FAIL guest init: ${o.fatal}\n`);
  if (!g.ok) {
    process.stdout.write(
      `\n---- guest console (${g.kernel}, lsm=${g.bootLsm}) ----\n${printable(o.console)}\n---- end of guest console ----\n`,
    );
    for (const r of g.reports.filter((x) => !x.ok)) {
      const f = join(g.resultsDir, `${r.scenario}.log`);
      if (existsSync(f)) process.stdout.write(`---- ${r.scenario}.log ----\n${readFileSync(f, 'utf8')}---- end ----\n`);
    }
  }
}

async function main(): Promise<number> {
  let opts: Options | null;
  try {
    opts = parse(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (!opts) {
    process.stdout.write(USAGE);
    return 0;
  }
  const all = scenarioNames(opts.scenarioDirs);
  if (opts.list) {
    for (const n of all) {
      const s = await loadScenario(n, opts.scenarioDirs);
      process.stdout.write(`${n.padEnd(24)} [${bootLsmOf(s)}] ${s.description}\n`);
    }
    return 0;
  }
  const names = opts.scenarios.length ? opts.scenarios : all;
  const groups = new Map<BootLsm, string[]>();
  for (const n of names) {
    const lsm: BootLsm = opts.noBpfLsm ? 'no-bpf' : bootLsmOf(await loadScenario(n, opts.scenarioDirs));
    groups.set(lsm, [...(groups.get(lsm) ?? []), n]);
  }
  if (/\s/.test(projectRoot)) throw new Error(`project path ${projectRoot} contains whitespace; the kernel command line cannot carry it`);

  ensureTools(log);
  buildNative();
  const cacheRoot = join(projectRoot, '.cache', 'vm', 'kernels');
  mkdirSync(cacheRoot, { recursive: true });
  const kernels: KernelArtifacts[] = opts.images.map((img) => customKernel(img, opts.modulesDir, cacheRoot));
  const series = opts.kernels.length ? opts.kernels : opts.images.length ? [] : Object.keys(DEBIAN_SERIES);
  for (const s of series) kernels.push(debianKernel(s, cacheRoot, log));

  const work = mkdtempSync(join(projectRoot, '.cache', 'vm', 'run-'));
  const results: GroupResult[] = [];
  try {
    for (const k of kernels) {
      const dir = join(work, k.label.replace(/[^\w.+-]/g, '_'));
      mkdirSync(dir, { recursive: true });
      const initrd = buildInitramfs(k, dir);
      for (const [lsm, ns] of groups) {
        const g = await runGroup(k, initrd, lsm, ns, opts, dir);
        printGroup(g);
        results.push(g);
      }
    }
  } finally {
    if (opts.keep) log(`work directory kept: ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
  process.stdout.write('\nkernel                      lsm       boot     scenarios  result\n');
  for (const g of results) {
    process.stdout.write(
      `${g.kernel.padEnd(28)}${g.bootLsm.padEnd(10)}${secs(g.outcome.bootMs).padEnd(9)}${secs(g.outcome.scenarioMs).padEnd(11)}${g.ok ? 'PASS' : 'FAIL'}\n`,
    );
  }
  return results.every((g) => g.ok) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`lilith vm-tests: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  },
);
