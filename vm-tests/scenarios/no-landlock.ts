// A kernel booted with lsm=bpf only: BPF-LSM, no Landlock, as on kernels built
// without it (the lvh images the CI matrix targets). `lilith run` must not drop
// Layer 3 silently: an agent whose registration does not list the missing
// Landlock layers in allow_degraded is refused with a message naming what is
// missing; one that lists them runs with seccomp, no capabilities and a new
// session, and says DEGRADED on stderr without --verbose. Real `lilith run
// --standalone` on a copy of the bundled policies.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bpfLsmActive } from '../../bpf/features.js';
import { ESCAPE_PROBE_BIN, landlockSupport } from '../../confine/native.js';
import { Checks, type ScenarioContext, type ScenarioResult } from '../scenario.js';

export const description =
  'lsm=bpf without Landlock: lilith run refuses agents not allowed to run degraded (naming the missing layers) and runs the others loudly degraded';
export const bootLsm = 'bpf-only';

const REFUSED = 126;

export async function run(ctx: ScenarioContext): Promise<ScenarioResult> {
  const c = new Checks();
  const support = landlockSupport();
  c.expect(
    'the kernel runs BPF-LSM and has no Landlock',
    bpfLsmActive() && support.abi === 0,
    `bpf active ${bpfLsmActive()}; Landlock ABI ${support.abi}; missing ${support.missing.join(', ')}`,
  );

  const policies = join(ctx.workDir, 'policies');
  cpSync(join(ctx.projectRoot, 'policies'), policies, { recursive: true });
  const workspace = join(ctx.workDir, 'workspace');
  mkdirSync(workspace);
  const config = JSON.parse(readFileSync(join(policies, 'lilith.json'), 'utf8'));
  const base = `lilith-vm-${process.pid}/agents`;
  config.kernel.cgroup_root = base;
  const filesystem = { read_only: ['/usr', '/lib', '/etc', '/proc', ctx.projectRoot], read_write: [workspace] };
  const landlockLayers = support.missing.filter((l) => l !== 'seccomp');
  const reg = (name: string, extra: object) => ({
    spiffe_id: `spiffe://corp.example/agents/${name}`,
    selectors: [`cgroup:/${base}/${name}`],
    profile: 'standard',
    filesystem,
    ...extra,
  });
  config.registrations = [
    reg('full', {}),
    reg('scope-only', { allow_degraded: ['landlock-scope'] }),
    reg('degraded', { allow_degraded: landlockLayers }),
  ];
  writeFileSync(join(policies, 'lilith.json'), JSON.stringify(config, null, 2));
  const lilithRun = (agent: string, command: string[]) => {
    const r = spawnSync(
      process.execPath,
      [join(ctx.projectRoot, 'dist/cli/main.js'), 'run', '--standalone', '--policies', policies, '--agent', agent, '--', ...command],
      { encoding: 'utf8', timeout: 60_000 },
    );
    return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  };
  const firstLine = (s: string) =>
    s
      .trim()
      .split('\n')
      .find((l) => /cannot apply|DEGRADED/.test(l)) ?? s.trim().slice(0, 300);

  // No allow_degraded: refused, naming Landlock and the way out.
  const marker = join(workspace, 'ran');
  const full = lilithRun('full', ['/bin/sh', '-c', `touch ${marker}`]);
  c.expect(
    'an agent without allow_degraded is refused, the message names Landlock and allow_degraded, and nothing ran',
    full.code === REFUSED && /cannot apply landlock/.test(full.stderr) && /allow_degraded/.test(full.stderr) && !existsSync(marker),
    `exit ${full.code}: ${firstLine(full.stderr)}`,
  );
  // Allowing less than what is missing is still a refusal.
  const scope = lilithRun('scope-only', ['/bin/sh', '-c', `touch ${marker}`]);
  c.expect(
    'allow_degraded: [landlock-scope] does not cover a kernel without Landlock: refused',
    scope.code === REFUSED && /cannot apply landlock \(/.test(scope.stderr) && !existsSync(marker),
    `exit ${scope.code}: ${firstLine(scope.stderr)}`,
  );

  // Listed: runs, loudly, with what does not need Landlock still applied.
  const degraded = lilithRun('degraded', ['/bin/sh', '-c', `touch ${marker}; ${ESCAPE_PROBE_BIN} ptrace 1; exit 0`]);
  const warnings = degraded.stderr.split('\n').filter((l) => /DEGRADED/.test(l));
  c.expect(
    'an agent whose allow_degraded lists the Landlock layers runs, with one DEGRADED warning naming them (no --verbose)',
    degraded.code === 0 && existsSync(marker) && warnings.length === 1 && /without landlock/.test(warnings[0] ?? ''),
    `exit ${degraded.code}; ${warnings[0] ?? degraded.stderr.trim().slice(0, 300)}`,
  );
  c.expect(
    'the degraded agent still runs under seccomp (ptrace refused)',
    /"attempt":"ptrace","ok":false,"errno":1,/.test(degraded.stdout),
    degraded.stdout.trim().split('\n').at(-1) ?? 'no output',
  );
  const caps = lilithRun('degraded', [ESCAPE_PROBE_BIN, 'caps']);
  c.expect(
    'the degraded agent holds no capabilities',
    /CapEff=0{16}/.test(caps.stdout) && /CapBnd=0{16}/.test(caps.stdout),
    caps.stdout.trim().split('\n').at(-1) ?? caps.stderr.trim().slice(0, 200),
  );
  return c.result();
}
