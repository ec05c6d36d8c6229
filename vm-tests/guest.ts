// Guest-side entry, run by the initramfs init inside the VM (chrooted into the host root):
//   node dist/vm-tests/guest.js --results DIR --boot-lsm bpf|no-bpf|bpf-only [--timeout SECONDS] [--scenarios-dir DIR] NAME...
// Runs the named scenarios one after another, writes DIR/<name>.json (ScenarioReport) and
// DIR/<name>.log, prints a TAP stream on the console, exits 0 only if every check passed.
import { appendFileSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadScenario, timeoutSOf } from './registry.js';
import { isBootLsm, LSM_LIST, type BootLsm, type Check, type ScenarioReport } from './scenario.js';

const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

function parse() {
  const { values, positionals } = parseArgs({
    args: process.argv.slice(2),
    options: {
      results: { type: 'string' },
      'boot-lsm': { type: 'string', default: 'bpf' },
      timeout: { type: 'string', default: '180' },
      'scenarios-dir': { type: 'string', multiple: true, default: [] },
    },
    allowPositionals: true,
    strict: true,
  });
  if (!values.results) throw new Error('--results DIR is required');
  const bootLsm = values['boot-lsm'];
  if (!isBootLsm(bootLsm)) throw new Error(`--boot-lsm must be one of ${Object.keys(LSM_LIST).join(', ')}`);
  const timeoutS = Number(values.timeout);
  if (!Number.isFinite(timeoutS) || timeoutS <= 0) throw new Error('--timeout must be a positive number of seconds');
  if (!positionals.length) throw new Error('no scenario named');
  return {
    resultsDir: values.results,
    bootLsm: bootLsm as BootLsm,
    timeoutMs: timeoutS * 1000,
    names: positionals,
    extraDirs: values['scenarios-dir'],
  };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms / 1000}s`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

async function runOne(
  name: string,
  resultsDir: string,
  bootLsm: BootLsm,
  timeoutMs: number,
  kernelRelease: string,
  extraDirs: string[],
): Promise<ScenarioReport> {
  const logFile = join(resultsDir, `${name}.log`);
  writeFileSync(logFile, '');
  const workDir = mkdtempSync(`/tmp/lilith-${name}-`);
  const log = (m: string) => {
    appendFileSync(logFile, `${m}\n`);
    process.stdout.write(`# ${name}: ${m}\n`);
  };
  const started = performance.now();
  let checks: Check[] = [];
  let error: string | undefined;
  try {
    const scenario = await loadScenario(name, extraDirs);
    const result = await withTimeout(
      scenario.run({ projectRoot, kernelRelease, bootLsm, workDir, resultsDir, log }),
      timeoutSOf(scenario, timeoutMs / 1000) * 1000,
      `scenario ${name}`,
    );
    checks = result.checks;
    if (!checks.length) error = 'scenario reported no checks';
  } catch (err) {
    error = err instanceof Error ? (err.stack ?? err.message) : String(err);
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
  const ok = !error && checks.every((c) => c.ok);
  return {
    scenario: name,
    kernelRelease,
    bootLsm,
    ok,
    durationMs: Math.round(performance.now() - started),
    checks,
    ...(error ? { error } : {}),
  };
}

async function main(): Promise<number> {
  const { resultsDir, bootLsm, timeoutMs, names, extraDirs } = parse();
  const kernelRelease = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  let allOk = true;
  let n = 0;
  console.log('TAP version 13');
  for (const name of names) {
    console.log(`LILITH-SCENARIO-START ${name}`);
    const report = await runOne(name, resultsDir, bootLsm, timeoutMs, kernelRelease, extraDirs);
    writeFileSync(join(resultsDir, `${name}.json`), `${JSON.stringify(report, null, 2)}\n`);
    for (const c of report.checks) {
      console.log(`${c.ok ? 'ok' : 'not ok'} ${++n} - ${name}: ${c.name}${c.detail ? ` # ${c.detail.replace(/\n/g, ' ')}` : ''}`);
    }
    if (report.error) console.log(`not ok ${++n} - ${name}: completed # ${report.error.split('\n')[0]}`);
    console.log(`LILITH-SCENARIO-END ${name} ${report.ok ? 'ok' : 'FAIL'} ${report.durationMs}ms`);
    allOk &&= report.ok;
  }
  console.log(`1..${n}`);
  return allOk ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`lilith vm guest: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(2);
  },
);
