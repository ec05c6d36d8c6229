// Runs the whole loader test suite (dist/test/bpf-addon) inside a VM guest and
// turns its TAP output into scenario checks. Used through the vm-tests runner:
//   node dist/vm-tests/runner.js --kernel 6.1 --scenarios-dir dist/test/bpf-addon/vm \
//     --scenario addon-suite [--scenario addon-suite-no-bpf] --timeout 900
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { BootLsm, Check, ScenarioContext, ScenarioResult } from '../../vm-tests/scenario.js';

interface TapLine {
  readonly ok: boolean;
  readonly name: string;
  readonly skip?: string;
}

function parseTap(out: string): TapLine[] {
  const lines: TapLine[] = [];
  // Top-level results only ("ok 3 - name # SKIP reason"); subtests are indented.
  for (const m of out.matchAll(/^(not ok|ok) \d+ - (.*?)(?: # SKIP(?: (.*))?)?$/gm)) {
    lines.push({ ok: m[1] === 'ok', name: m[2]!, ...(m[0].includes('# SKIP') ? { skip: m[3] ?? '' } : {}) });
  }
  return lines;
}

export async function runSuite(ctx: ScenarioContext, bootLsm: BootLsm): Promise<ScenarioResult> {
  const dir = join(ctx.projectRoot, 'dist', 'test', 'bpf-addon');
  const out = await new Promise<{ code: number | null; stdout: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=tap', dir], {
      cwd: ctx.projectRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => ctx.log(String(d).trimEnd()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout }));
  });
  ctx.log(out.stdout);
  const results = parseTap(out.stdout).filter((r) => !r.name.startsWith('/'));
  const checks: Check[] = results.map((r) => ({
    name: r.name,
    // With bpf in the LSM list the LSM tests must run, not skip.
    ok: r.ok && !(r.skip !== undefined && bootLsm === 'bpf'),
    detail: r.skip !== undefined ? `skipped: ${r.skip}` : r.ok ? 'passed' : 'failed (see the scenario log)',
  }));
  checks.push({
    name: 'loader test suite exits 0',
    ok: out.code === 0 && results.length > 0,
    detail: `exit ${out.code}, ${results.length} tests`,
  });
  return { checks };
}
