// `npm run redteam -- --vm`: the VM runner's report (vm-tests/runner.ts printGroup)
// turned into one line per attempt per kernel for the red-team scenario, and
// one line per other scenario per kernel. Pure, so it is tested without a VM.

export interface VmLine {
  verdict: string;
  kernel: string;
  /** The attempt id (redteam scenario) or the scenario name. */
  id: string;
  detail: string;
}

const GROUP = /^== (\S+) \(lsm=([^)]+)\): (PASS|FAIL)/;
const SCENARIO = /^ {3}(ok {2}|FAIL) (\S+) \(([^)]*)\) on (\S+)$/;
const CHECK = /^ {8}(ok {2}|FAIL) (.*)$/;
// A red-team check: "<id> [<layer>] <what>: <BLOCKED|KERNEL-GAP (...)|NOT BLOCKED>: <detail>".
const ATTEMPT = /^(\S+) \[[^\]]*\] .*?: (BLOCKED|KERNEL-GAP \(.*?\)|NOT BLOCKED): (.*)$/;

export function vmReportLines(runnerStdout: string): VmLine[] {
  const out: VmLine[] = [];
  let kernel = '?';
  let lsm = '';
  let scenario: { name: string; ok: boolean; checks: number; failed: number } | null = null;
  const flush = () => {
    if (scenario && scenario.name !== 'redteam')
      out.push({
        verdict: scenario.ok ? 'PASS' : 'FAIL',
        kernel,
        id: scenario.name,
        detail: `${scenario.checks - scenario.failed}/${scenario.checks} checks (lsm=${lsm})`,
      });
    scenario = null;
  };
  for (const line of runnerStdout.split('\n')) {
    let m = GROUP.exec(line);
    if (m) {
      flush();
      kernel = m[1]!;
      lsm = m[2]!;
      continue;
    }
    m = SCENARIO.exec(line);
    if (m) {
      flush();
      scenario = { name: m[2]!, ok: m[1] === 'ok  ', checks: 0, failed: 0 };
      continue;
    }
    m = CHECK.exec(line);
    if (!m || !scenario) continue;
    scenario.checks++;
    if (m[1] !== 'ok  ') scenario.failed++;
    if (scenario.name !== 'redteam') continue;
    const a = ATTEMPT.exec(m[2]!);
    if (a) out.push({ verdict: a[2]!.startsWith('KERNEL-GAP') ? 'KERNEL-GAP' : a[2]!, kernel, id: a[1]!, detail: a[3]! });
    else out.push({ verdict: m[1] === 'ok  ' ? 'ok' : 'FAIL', kernel, id: 'redteam', detail: m[2]! });
  }
  flush();
  return out;
}

export function formatVmLine(l: VmLine): string {
  return `${l.verdict.padEnd(12)} ${l.kernel.padEnd(22)} ${l.id.padEnd(24)} ${l.detail}`;
}
