// `npm run bench -- proxy [--iterations N] [--seconds S] [--concurrency C] [--engine fast|wasm] [--audit file|null] [--topology both|processes|single] [--ab <dist dir of another build>]`:
// latency the dataplane adds to an HTTP/1.1 keep-alive request and to an MCP
// tools/call (p50/p99, proxied minus direct, measured interleaved in the same
// run), and requests/s at saturation through the proxy vs direct.
//
// Two topologies (both by default):
// - single: client, upstreams and proxy share this process's event loop. No
//   process wake-ups, so this isolates the proxy's own work per request.
// - processes: the client runs here, the upstream servers in one child process
//   and the proxy in another, as agent, server and daemon do in deployment;
//   every proxied request then pays two extra process wake-ups.
// In both, a bare TCP relay (pipe, nothing parsed) sits next to the proxy as a
// baseline, separating what any userspace proxy costs in that place from what
// Lilith's parsing, decision and audit add.
import net from 'node:net';
import { closeSync, openSync, readSync } from 'node:fs';
import { loadavg } from 'node:os';
import { mkdtemp, rm, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { EngineName } from '../cedar/index.js';
import { startChild, type Part } from './child.js';
import { startBenchProxy, type BenchProxy, type BenchProxyOptions, type BenchProxyReady } from './proxy-enforcer.js';
import { MCP_BODY, startUpstreams, type UpstreamPorts } from './proxy-upstreams.js';

export const summary =
  'dataplane added latency (HTTP keep-alive, MCP tools/call; p50/p99 vs direct and vs a bare relay) and requests/s at saturation';

type Topology = 'processes' | 'single';
const here = (name: string) => fileURLToPath(new URL(`./${name}.js`, import.meta.url));

function request(kind: 'http' | 'mcp'): Buffer {
  if (kind === 'http') return Buffer.from('GET /hello HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench\r\n\r\n');
  return Buffer.from(
    `POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMcp-Session-Id: bench-session\r\nContent-Length: ${Buffer.byteLength(MCP_BODY)}\r\n\r\n${MCP_BODY}`,
  );
}

/** A keep-alive client on one socket: send, wait for one full (Content-Length) response. */
class KeepAliveClient {
  #sock: net.Socket;
  #buf: Buffer = Buffer.alloc(0);
  #waiter: (() => void) | null = null;
  private constructor(sock: net.Socket) {
    this.#sock = sock;
    sock.setNoDelay(true);
    sock.on('data', (d: Buffer) => {
      this.#buf = this.#buf.length ? Buffer.concat([this.#buf, d]) : d;
      this.#check();
    });
  }
  static connect(port: number): Promise<KeepAliveClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(new KeepAliveClient(s)));
      s.once('error', reject);
    });
  }
  #check(): void {
    const end = this.#buf.indexOf('\r\n\r\n');
    if (end < 0 || !this.#waiter) return;
    const m = /content-length: *(\d+)/i.exec(this.#buf.subarray(0, end).toString('latin1'));
    const total = end + 4 + Number(m?.[1] ?? 0);
    if (this.#buf.length < total) return;
    if (!/^HTTP\/1\.1 200/.test(this.#buf.toString('latin1', 0, 12)))
      throw new Error(`unexpected response: ${this.#buf.toString('latin1', 0, 200)}`);
    this.#buf = this.#buf.subarray(total);
    const w = this.#waiter;
    this.#waiter = null;
    w();
  }
  send(req: Buffer): Promise<void> {
    return new Promise((resolve) => {
      this.#waiter = resolve;
      this.#sock.write(req);
    });
  }
  close(): void {
    this.#sock.destroy();
  }
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/**
 * Nanoseconds this thread has spent runnable but waiting for a CPU (the second
 * field of /proc/thread-self/schedstat), or null where the kernel does not say.
 * In the one-process topology every party of a request runs on this thread, so
 * the growth of this number across a request is time the machine's other load
 * took from it, not work the request needed.
 */
class RunqueueWait {
  readonly #fd: number;
  readonly #buf = Buffer.alloc(128);
  private constructor(fd: number) {
    this.#fd = fd;
  }
  static open(): RunqueueWait | null {
    try {
      const w = new RunqueueWait(openSync('/proc/thread-self/schedstat', 'r'));
      return w.ns() === null ? null : w;
    } catch {
      return null;
    }
  }
  ns(): number | null {
    const n = readSync(this.#fd, this.#buf, 0, this.#buf.length, 0);
    const f = this.#buf.toString('latin1', 0, n).split(' ');
    return f.length >= 2 ? Number(f[1]) : null;
  }
  close(): void {
    closeSync(this.#fd);
  }
}

const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

const us = (n: number) => `${n.toFixed(1).padStart(8)} µs`;

interface Options {
  iterations: number;
  seconds: number;
  concurrency: number;
  engine: EngineName;
  audit: 'file' | 'null';
}

interface TopologyResult {
  /** p99 added by Lilith (minus direct), HTTP and MCP. */
  lilithP99: { http: number; mcp: number };
  relayP99: { http: number; mcp: number };
  /** One process only: p99 added with the runqueue wait taken out of each sample. */
  ownP99?: { http: number; mcp: number };
}

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      iterations: { type: 'string', default: '8000' },
      seconds: { type: 'string', default: '3' },
      concurrency: { type: 'string', default: '16' },
      engine: { type: 'string', default: 'fast' },
      audit: { type: 'string', default: 'file' },
      topology: { type: 'string', default: 'both' },
      ab: { type: 'string' },
    },
    allowPositionals: true,
    strict: false,
  });
  if (typeof values.ab === 'string') {
    // A/B against another build (see proxy-ab.ts); nothing else runs.
    const { runAb } = await import('./proxy-ab.js');
    return runAb(values.ab, Number(values.iterations === '8000' ? 6000 : values.iterations), values.audit === 'null' ? 'null' : 'file');
  }
  if (!['both', 'processes', 'single'].includes(String(values.topology)))
    throw new Error(`--topology must be both, processes or single, got '${String(values.topology)}'`);
  const o: Options = {
    iterations: Number(values.iterations),
    seconds: Number(values.seconds),
    concurrency: Number(values.concurrency),
    engine: values.engine as EngineName,
    audit: values.audit === 'null' ? 'null' : 'file',
  };
  const topologies: Topology[] = values.topology === 'both' ? ['single', 'processes'] : [values.topology as Topology];
  const results = new Map<Topology, TopologyResult>();
  for (const t of topologies) results.set(t, await runTopology(t, o));

  const single = results.get('single');
  const multi = results.get('processes');
  process.stdout.write("\ntarget: p99 added latency < 1000 µs (deployment shape); proxy's own work p99 <= 500 µs\n");
  const verdict = (n: number, bound = 1000) => `${n.toFixed(0)} µs ${n <= bound ? 'met' : 'MISSED'}`;
  if (single) {
    process.stdout.write(
      `  proxy's own work (one process, no wake-ups):   http ${verdict(single.lilithP99.http, 500)}, mcp ${verdict(single.lilithP99.mcp, 500)}\n`,
    );
    if (single.ownP99)
      process.stdout.write(
        `    the same, runqueue wait removed:            http ${verdict(single.ownP99.http, 500)}, mcp ${verdict(single.ownP99.mcp, 500)}\n`,
      );
  }
  if (multi) {
    process.stdout.write(
      `  deployment shape (three processes):           http ${verdict(multi.lilithP99.http)}, mcp ${verdict(multi.lilithP99.mcp)}\n`,
    );
    // The wake-up tail of this machine is paid by any proxy in its own process: say how much of it a bare relay already pays.
    process.stdout.write(
      `    of which a bare relay in the same place:    http ${multi.relayP99.http.toFixed(0)} µs, mcp ${multi.relayP99.mcp.toFixed(0)} µs` +
        ` (lilith over it: http ${(multi.lilithP99.http - multi.relayP99.http).toFixed(0)} µs, mcp ${(multi.lilithP99.mcp - multi.relayP99.mcp).toFixed(0)} µs)\n`,
    );
  }
  // Intercepted TLS paths (HTTPS h1/h2, gRPC) and handshake cost, in the same run.
  await (await import('./proxy-tls.js')).run(argv.filter((a) => !a.startsWith('--topology')));
}

async function runTopology(topology: Topology, o: Options): Promise<TopologyResult> {
  const { iterations, seconds, concurrency } = o;
  const dir = await mkdtemp(join(tmpdir(), 'lilith-bench-proxy-'));
  const upstreams: Part<UpstreamPorts, null> =
    topology === 'single' ? await startUpstreams() : await startChild(here('proxy-upstreams'), {});
  const proxyOptions: BenchProxyOptions = { upstreams: upstreams.ready, engine: o.engine, audit: o.audit, dir };
  const proxy: BenchProxy =
    topology === 'single'
      ? await startBenchProxy(proxyOptions)
      : await startChild<BenchProxyOptions, BenchProxyReady, number>(here('proxy-enforcer'), proxyOptions);
  const { lilith, relay, engine: engineName } = proxy.ready;

  process.stdout.write(
    `\n-- ${topology === 'processes' ? 'three processes: client here, upstreams and proxy each in their own (deployment shape)' : 'one process: client, upstreams and proxy share one event loop'}\n` +
      `engine ${engineName}; ${iterations} sequential requests per path (interleaved), saturation ${concurrency} connections × ${seconds}s\n`,
  );
  const paths = (['http', 'mcp'] as const).flatMap((kind) => [
    { name: `${kind} direct`, port: upstreams.ready[kind], req: request(kind) },
    { name: `${kind} bare relay`, port: relay[kind], req: request(kind) },
    { name: `${kind} lilith`, port: lilith[kind], req: request(kind) },
  ]);
  const clients = await Promise.all(paths.map((p) => KeepAliveClient.connect(p.port)));
  const samples = paths.map(() => [] as number[]);
  // One process: each sample also without the time the scheduler kept this thread waiting
  // for a CPU (other processes' load), which is not the proxy's work.
  const waitClock = topology === 'single' ? RunqueueWait.open() : null;
  const own = paths.map(() => [] as number[]);
  let waited = 0;
  // Warm-up (JIT, engine caches), then interleave so drift hits all paths alike.
  for (let i = 0; i < 300; i++) for (let k = 0; k < paths.length; k++) await clients[k].send(paths[k].req);
  const loadBefore = load();
  for (let i = 0; i < iterations; i++) {
    for (let k = 0; k < paths.length; k++) {
      const w0 = waitClock?.ns() ?? 0;
      const t0 = process.hrtime.bigint();
      await clients[k].send(paths[k].req);
      const total = Number(process.hrtime.bigint() - t0) / 1000;
      samples[k].push(total);
      if (waitClock) {
        const w = ((waitClock.ns() ?? w0) - w0) / 1000;
        if (w > 0) waited++;
        own[k].push(Math.max(0, total - w));
      }
    }
  }
  waitClock?.close();
  for (const c of clients) c.close();
  const summarise = (s: number[]) => {
    const sorted = [...s].sort((a, b) => a - b);
    return { p50: pct(sorted, 50), p90: pct(sorted, 90), p99: pct(sorted, 99) };
  };
  const stats = samples.map(summarise);
  process.stdout.write(`latency per request (keep-alive, one at a time; load average ${loadBefore} before, ${load()} after)\n`);
  for (let k = 0; k < paths.length; k++)
    process.stdout.write(`  ${paths[k].name.padEnd(16)} p50 ${us(stats[k].p50)}   p90 ${us(stats[k].p90)}   p99 ${us(stats[k].p99)}\n`);
  const addedTable = (title: string, st: typeof stats) => {
    process.stdout.write(`${title.padEnd(35)}lilith                     bare relay (baseline)\n`);
    for (const [label, d] of [
      ['http', 0],
      ['mcp tools/call', 3],
    ] as const) {
      const [direct, bare, lil] = [st[d], st[d + 1], st[d + 2]];
      process.stdout.write(
        `  ${label.padEnd(15)} p50 ${us(lil.p50 - direct.p50)}  p99 ${us(lil.p99 - direct.p99)}    p50 ${us(bare.p50 - direct.p50)}  p99 ${us(bare.p99 - direct.p99)}\n`,
      );
    }
  };
  addedTable('added latency (minus direct)', stats);
  const ownStats = own.map(summarise);
  if (waitClock) {
    process.stdout.write(
      `${waited} of ${iterations * paths.length} requests waited for a CPU (runqueue, /proc/thread-self/schedstat); the same samples with that wait taken out:\n`,
    );
    addedTable('added latency, runqueue wait removed', ownStats);
  }

  // Saturation: `concurrency` keep-alive connections sending back to back.
  const saturate = async (port: number, req: Buffer): Promise<number> => {
    const cs = await Promise.all(Array.from({ length: concurrency }, () => KeepAliveClient.connect(port)));
    let count = 0;
    const until = Date.now() + seconds * 1000;
    await Promise.all(
      cs.map(async (c) => {
        while (Date.now() < until) {
          await c.send(req);
          count++;
        }
      }),
    );
    for (const c of cs) c.close();
    return count / seconds;
  };
  process.stdout.write(`requests/s at saturation (${concurrency} connections)\n`);
  const rates: number[] = [];
  for (let k = 0; k < paths.length; k++) {
    rates.push(await saturate(paths[k].port, paths[k].req));
    const direct = rates[k - (k % 3)];
    process.stdout.write(
      `  ${paths[k].name.padEnd(16)} ${Math.round(rates[k]).toString().padStart(8)} req/s   ${(rates[k] / direct).toFixed(2)}× direct\n`,
    );
  }

  const dropped = await proxy.stop();
  await upstreams.stop();
  const lat = (await readFile(join(dir, 'audit.jsonl'), 'utf8').catch(() => ''))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { latency_us: number; protocol: string })
    .filter((e) => e.protocol === 'http' || e.protocol === 'mcp')
    .map((e) => e.latency_us)
    .sort((a, b) => a - b);
  if (lat.length)
    process.stdout.write(
      `decision share (build + evaluate + taint, from the audit log): p50 ${us(pct(lat, 50))}   p99 ${us(pct(lat, 99))}   (${lat.length} decisions, ${dropped} audit events dropped)\n`,
    );
  await rm(dir, { recursive: true, force: true });
  return {
    lilithP99: { http: stats[2].p99 - stats[0].p99, mcp: stats[5].p99 - stats[3].p99 },
    relayP99: { http: stats[1].p99 - stats[0].p99, mcp: stats[4].p99 - stats[3].p99 },
    ownP99: waitClock ? { http: ownStats[2].p99 - ownStats[0].p99, mcp: ownStats[5].p99 - ownStats[3].p99 } : undefined,
  };
}
