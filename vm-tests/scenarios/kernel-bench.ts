// connect() cost with the BPF-LSM hooks + interception, managed vs unmanaged,
// in the same guest run. Under qemu TCG the absolute numbers are emulation
// speed, not hardware speed: read the managed/unmanaged difference.
import { copyFileSync, chmodSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { attach, type Kernel } from '../../bpf/index.js';
import { ensureCgroup2 } from '../../bpf/mounts.js';
import { makePinRoot, probe, probeBinary } from '../../testkit/kernel.js';
import { Checks, type ScenarioContext, type ScenarioResult } from '../scenario.js';

export const description = 'BPF-LSM + interception: connect() latency for a managed vs an unmanaged process (same run; TCG)';
export const bootLsm = 'bpf';

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function run(ctx: ScenarioContext): Promise<ScenarioResult> {
  const c = new Checks();
  const agentBin = join(ctx.workDir, 'agent-probe');
  const plainBin = join(ctx.workDir, 'plain-probe');
  for (const p of [agentBin, plainBin]) {
    copyFileSync(probeBinary(false), p);
    chmodSync(p, 0o755);
  }
  const server = createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, r));
  const port = (server.address() as { port: number }).port;
  let kernel: Kernel | undefined;
  const n = '300';
  try {
    kernel = await attach({
      cgroupPath: ensureCgroup2(),
      pinRoot: makePinRoot(),
      mode: 'bpf-lsm',
      heartbeatTtlMs: 15000,
      proxy: { address: '127.0.0.1', port, dnsPort: port },
    });
    kernel.registerIdentity({ binary: agentBin }, 3);
    kernel.startHeartbeat();
    const cases: Record<string, string[]> = {
      'unmanaged → 127.0.0.1 (baseline)': [plainBin, 'bench', n, '127.0.0.1', String(port)],
      'managed → proxy address': [agentBin, 'bench', n, '127.0.0.1', String(port)],
      'managed → 198.51.100.1:80 (rewritten)': [agentBin, 'bench', n, '198.51.100.1', '80'],
    };
    const p50: Record<string, number[]> = {};
    for (let r = 0; r < 3; r++) {
      for (const [name, args] of Object.entries(cases)) {
        const l = (await probe(args)) as unknown as { ok: boolean; p50_ns: number };
        if (!l.ok) throw new Error(`${name}: connects failed`);
        (p50[name] ??= []).push(l.p50_ns);
      }
    }
    const base = median(p50['unmanaged → 127.0.0.1 (baseline)']!);
    const rows = Object.entries(p50).map(([name, xs]) => ({
      name,
      p50us: +(median(xs) / 1000).toFixed(1),
      deltaUs: +((median(xs) - base) / 1000).toFixed(1),
    }));
    writeFileSync(
      join(ctx.resultsDir, 'kernel-bench-numbers.json'),
      `${JSON.stringify({ kernel: ctx.kernelRelease, connects: Number(n), rounds: 3, rows }, null, 2)}\n`,
    );
    for (const r of rows) c.expect(`connect p50: ${r.name}`, true, `${r.p50us} µs (Δ ${r.deltaUs} µs vs unmanaged)`);
  } finally {
    kernel?.detachAll();
    await new Promise<void>((r) => server.close(() => r()));
  }
  return c.result();
}
