// `npm run bench -- kernel`: what Lilith's cgroup hooks add to connect().
// Same run, same listener: lilith-probe times N connect() calls as an
// unmanaged process (baseline), as a managed process connecting to the proxy
// address itself (hooks run, no rewrite), and as a managed process connecting
// elsewhere (rewritten to the proxy, original destination recorded, sockops).
// Then the same from a network namespace (a veth pair to the host, as a pod or
// `lilith run --netns` has), where the proxy is the node proxy address: the
// namespace's own unmanaged connect to that address is its baseline, and the
// managed rewritten case is also compared with the host's.
// Host, cgroup-only mode (BPF-LSM cannot load under this host's lockdown; the
// VM scenario kernel-lsm covers the LSM hooks, where TCG timing is not
// representative). Options: --n N (connects per sample, default 2000),
// --rounds R (default 5).
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { attach, type Kernel } from '../bpf/index.js';
import { detachPinned } from '../bpf/index.js';
import { makeCgroup, makePinRoot, probe, probeBinary, repoRoot, runProbe } from '../testkit/kernel.js';
import { startDaemonLite } from '../testkit/kernel-fixtures.js';
import { createAgentNetns, ensureNodeAddress, removeNodeAddress, type AgentNetns } from '../confine/netns.js';

export const summary = 'connect() latency added by the cgroup hooks (managed vs unmanaged, same run); fail-closed and restart times';

interface Sample {
  mean: number;
  p50: number;
  p99: number;
}

function opt(argv: string[], name: string, dflt: number): number {
  const i = argv.indexOf(name);
  const v = i >= 0 ? Number(argv[i + 1]) : dflt;
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${name} must be a positive integer`);
  return v;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function run(argv: string[]): Promise<void> {
  if (process.getuid?.() !== 0) {
    process.stdout.write('kernel bench needs root (cgroup v2 + BPF); skipped\n');
    return;
  }
  const n = opt(argv, '--n', 2000);
  const rounds = opt(argv, '--rounds', 5);
  execFileSync('make', ['-s', '-C', join(repoRoot, 'bpf')], { stdio: 'inherit' });
  probeBinary(true);

  const server = createServer((s) => s.destroy());
  // All addresses: loopback for host agents, the node proxy address for namespaced ones.
  await new Promise<void>((r) => server.listen({ port: 0, host: '0.0.0.0', backlog: 4096 }, r));
  const node = `169.254.77.${100 + (process.pid % 150)}`;
  const addedNode = ensureNodeAddress(node);
  let ns: AgentNetns | undefined;
  const port = (server.address() as { port: number }).port;
  const agent = makeCgroup();
  const unixDir = mkdtempSync(join(tmpdir(), 'lilith-bench-'));
  const unixPath = join(unixDir, 'b.sock');
  const unixServer = createServer((s) => s.destroy());
  await new Promise<void>((r) => unixServer.listen({ path: unixPath, backlog: 4096 }, r));
  let kernel: Kernel | undefined;
  try {
    kernel = await attach({
      cgroupPath: agent.dir,
      pinRoot: makePinRoot(),
      mode: 'cgroup-only',
      proxy: { address: node, port, dnsPort: port },
      unixAllowlist: [unixPath],
    });
    ns = createAgentNetns(`lbn${(process.pid % 100000).toString(36)}`);
    const inNs = (args: string[]): string[] => ['/usr/bin/nsenter', `--net=${ns!.path}`, probeBinary(false), ...args];
    const unixHook = kernel.hooks.active.includes('cgroup/connect_unix');
    kernel.registerIdentity({ cgroup: agent.dir }, 1);
    kernel.startHeartbeat();
    const cases = {
      'unmanaged → 127.0.0.1 (baseline)': ['bench', String(n), '127.0.0.1', String(port)],
      'unmanaged → node address': ['bench', String(n), node, String(port)],
      'managed → proxy address (no rewrite)': ['cg', agent.procs, 'bench', String(n), node, String(port)],
      'managed → 198.51.100.1:80 (rewritten)': ['cg', agent.procs, 'bench', String(n), '198.51.100.1', '80'],
      'netns: unmanaged → node address (baseline)': inNs(['bench', String(n), node, String(port)]),
      'netns: managed → proxy address (no rewrite)': inNs(['cg', agent.procs, 'bench', String(n), node, String(port)]),
      'netns: managed → 198.51.100.1:80 (rewritten)': inNs(['cg', agent.procs, 'bench', String(n), '198.51.100.1', '80']),
      // AF_UNIX (connect_unix, Linux 6.7+): the allowlist lookup on every connect.
      ...(unixHook
        ? {
            'unmanaged → unix socket (baseline)': ['bench', String(n), unixPath],
            'managed → allowlisted unix socket': ['cg', agent.procs, 'bench', String(n), unixPath],
          }
        : {}),
    } as Record<string, string[]>;
    const samples: Record<string, Sample[]> = {};
    for (let r = 0; r < rounds; r++) {
      for (const [name, args] of Object.entries(cases)) {
        const l = (await (args[0] === '/usr/bin/nsenter' ? runProbe(args).then((ls) => ls.at(-1)!) : probe([...args]))) as unknown as {
          ok: boolean;
          mean_ns: number;
          p50_ns: number;
          p99_ns: number;
          fails: number;
        };
        if (!l.ok) throw new Error(`${name}: ${l.fails} of ${n} connects failed`);
        (samples[name] ??= []).push({ mean: l.mean_ns, p50: l.p50_ns, p99: l.p99_ns });
      }
    }
    const tcp = Object.fromEntries(Object.entries(samples).filter(([k]) => !k.includes('unix') && !k.startsWith('netns:')));
    printLatency(tcp, n, rounds, Object.keys(cases)[0]!);
    const netns = Object.fromEntries(Object.entries(samples).filter(([k]) => k.startsWith('netns:')));
    process.stdout.write('\nfrom a network namespace (veth to the host; proxy on the node address):\n');
    printLatency(netns, n, rounds, 'netns: unmanaged → node address (baseline)', 'each namespaced case against the namespace baseline');
    const p50 = (k: string): number => median(samples[k]!.map((x) => x.p50));
    const hostHooks = p50('managed → 198.51.100.1:80 (rewritten)') - p50('unmanaged → node address');
    const nsHooks = p50('netns: managed → 198.51.100.1:80 (rewritten)') - p50('netns: unmanaged → node address (baseline)');
    process.stdout.write(
      `added by the hooks (rewritten − unmanaged to the same proxy address), p50: host ${(hostHooks / 1000).toFixed(2)} µs, ` +
        `namespaced ${(nsHooks / 1000).toFixed(2)} µs; namespaced rewritten connect − host rewritten connect: ` +
        `${((p50('netns: managed → 198.51.100.1:80 (rewritten)') - p50('managed → 198.51.100.1:80 (rewritten)')) / 1000).toFixed(2)} µs (the veth hop)\n`,
    );
    if (unixHook)
      printLatency(
        Object.fromEntries(Object.entries(samples).filter(([k]) => k.includes('unix'))),
        n,
        rounds,
        'unmanaged → unix socket (baseline)',
        'means and p99 carry scheduling noise of a loaded 2-core host',
      );
    else
      process.stdout.write(
        `AF_UNIX: connect_unix not available here (${JSON.stringify(kernel.hooks.missing.find((m) => m.hook === 'cgroup/connect_unix'))})\n`,
      );
  } finally {
    kernel?.detachAll();
    agent.remove();
    ns?.remove();
    if (addedNode) removeNodeAddress(node);
    await new Promise<void>((r) => unixServer.close(() => r()));
    rmSync(unixDir, { recursive: true, force: true });
  }
  await failClosed(port, opt(argv, '--kills', 3));
  await new Promise<void>((r) => server.close(() => r()));
}

function printLatency(
  samples: Record<string, Sample[]>,
  n: number,
  rounds: number,
  baseline: string,
  note = 'means and p99 carry SYN-backlog retransmits of the shared listener',
): void {
  const base = median(samples[baseline]!.map((s) => s.p50));
  process.stdout.write(
    `connect() on ${process.platform} ${execFileSync('uname', ['-r']).toString().trim()}, ${n} connects × ${rounds} rounds (median of rounds)\n`,
  );
  process.stdout.write(
    `${'case'.padEnd(46)} ${'p50 µs'.padStart(8)} ${'mean µs'.padStart(8)} ${'p99 µs'.padStart(8)} ${'Δp50 µs'.padStart(8)}\n`,
  );
  for (const [name, ss] of Object.entries(samples)) {
    const p50 = median(ss.map((s) => s.p50));
    const mean = median(ss.map((s) => s.mean));
    const p99 = median(ss.map((s) => s.p99));
    const f = (ns: number): string => (ns / 1000).toFixed(2).padStart(8);
    process.stdout.write(`${name.padEnd(46)} ${f(p50)} ${f(mean)} ${f(p99)} ${f(p50 - base)}\n`);
  }
  process.stdout.write(`(p50 is the figure to read: ${note})\n`);
}

async function startDaemon(config: object): Promise<{ child: ChildProcess; startedNs: bigint; adopted: boolean }> {
  const d = await startDaemonLite<{ adopted: boolean }>(config);
  return { child: d.child, startedNs: d.startedNs, adopted: d.ready.adopted };
}

/**
 * SIGKILL a heartbeating daemon-lite while a managed lilith-probe connects
 * every 2 ms; the probe reports (CLOCK_MONOTONIC) when it first gets EPERM.
 * Then restart the daemon and time until a connect succeeds again.
 */
async function failClosed(port: number, kills: number): Promise<void> {
  const agent = makeCgroup();
  const pinRoot = makePinRoot();
  const config = {
    cgroupPath: agent.dir,
    pinRoot,
    mode: 'cgroup-only',
    proxy: { address: '127.0.0.1', port, dnsPort: port },
    identities: [{ selector: { cgroup: agent.dir }, identity: 1 }],
  };
  const deny: number[] = [];
  const restore: number[] = [];
  let daemon: ChildProcess | undefined;
  try {
    daemon = (await startDaemon(config)).child;
    for (let i = 0; i < kills; i++) {
      const watcher = runProbe(['cg', agent.procs, 'until', 'denied', '5000', '198.51.100.1', '80']);
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 250));
      const killNs = process.hrtime.bigint();
      daemon.kill('SIGKILL');
      const d = (await watcher).at(-1) as { ok: boolean; mono_ns?: number } | undefined;
      if (!d?.ok || !d.mono_ns) throw new Error('managed connect was never denied after SIGKILL');
      deny.push(Number(BigInt(d.mono_ns) - killNs) / 1e6);
      const watcher2 = runProbe(['cg', agent.procs, 'until', 'allowed', '20000', '198.51.100.1', '80'], { timeoutMs: 25000 });
      await new Promise((r) => setTimeout(r, 50));
      const next = await startDaemon(config);
      daemon = next.child;
      const a = (await watcher2).at(-1) as { ok: boolean; mono_ns?: number } | undefined;
      if (!a?.ok || !a.mono_ns || !next.adopted)
        throw new Error('traffic did not resume after the daemon restarted (or it did not re-adopt)');
      restore.push(Number(BigInt(a.mono_ns) - next.startedNs) / 1e6);
    }
  } finally {
    daemon?.kill('SIGKILL');
    detachPinned(pinRoot);
    agent.remove();
  }
  const fmt = (xs: number[]): string => `median ${median(xs).toFixed(0)} ms (${xs.map((x) => x.toFixed(0)).join(', ')})`;
  process.stdout.write(`fail-closed, cgroup-only on this host, TTL 1000 ms, heartbeat 250 ms, ${kills} kills:\n`);
  process.stdout.write(`  SIGKILL → managed connect EPERM:           ${fmt(deny)}   (bound: TTL − heartbeat age ∈ [750, 1000] ms)\n`);
  process.stdout.write(`  daemon restart (node start) → traffic flows: ${fmt(restore)}   (baseline: re-adopts pins, no reload)\n`);
}
