#!/usr/bin/env node
// Runs every test: node's built-in runner over dist/test (TAP-like spec summary
// CI can read), then the VM matrix unless --no-vm. Exit status is non-zero if any part failed.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const args = process.argv.slice(2);
const noVm = args.includes('--no-vm') || process.env.LILITH_SKIP_VM === '1';
const only = args.filter((a) => !a.startsWith('--'));

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findTests(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}

// Test-only native artefacts (BPF objects, probe binary, VM loader) are built here, not by the product build.
const built = spawnSync('bash', ['scripts/build-tests.sh'], { stdio: 'inherit' });
if (built.status !== 0) process.exit(1);

// Formatting and lint first: a finding fails the run but does not hide the test results.
const lint = spawnSync('npx', ['--no-install', 'biome', 'ci', '.'], { stdio: 'inherit' });
const lintFailed = lint.status !== 0;

let files = existsSync('dist/test') ? findTests('dist/test') : [];
if (only.length) files = files.filter((f) => only.some((o) => f.includes(o)));
let failed = lintFailed;
if (files.length) {
  // Serial: kernel tests attach cgroup programs and must not interleave.
  const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files], { stdio: 'inherit' });
  failed ||= r.status !== 0;
}
if (!noVm && !only.length) {
  const r = spawnSync(process.execPath, ['dist/vm-tests/runner.js'], { stdio: 'inherit' });
  failed ||= r.status !== 0;
}
process.exit(failed ? 1 : 0);
