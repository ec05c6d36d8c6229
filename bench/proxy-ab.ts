// `npm run bench -- proxy --ab <dist dir of another build> [--iterations N] [--audit file|null]`:
// this build's proxy and another build's, side by side in one process, with the
// direct path and a bare relay, interleaved request by request (HTTP keep-alive
// GET and MCP tools/call). Machine load then hits every path alike, so the two
// builds' added p50 compare even on a busy machine (their absolute numbers run a
// little above the plain bench's: two proxies share the process's caches).
import net from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import promClient from 'prom-client';
import { startBenchProxy, type BenchProxy, type BenchProxyOptions } from './proxy-enforcer.js';
import { MCP_BODY, startUpstreams } from './proxy-upstreams.js';

const REQUESTS = {
  http: Buffer.from('GET /hello HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench\r\n\r\n'),
  mcp: Buffer.from(
    `POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMcp-Session-Id: bench-session\r\nContent-Length: ${Buffer.byteLength(MCP_BODY)}\r\n\r\n${MCP_BODY}`,
  ),
};

/** A keep-alive client sending one request at a time, reading Content-Length responses. */
async function client(port: number): Promise<{ send: (r: Buffer) => Promise<void>; close: () => void }> {
  const s = net.connect(port, '127.0.0.1');
  s.setNoDelay(true);
  await new Promise((r) => s.once('connect', r));
  let buf: Buffer = Buffer.alloc(0);
  let waiter: (() => void) | null = null;
  s.on('data', (d: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return;
    const total = end + 4 + Number(/content-length: *(\d+)/i.exec(buf.toString('latin1', 0, end))?.[1] ?? 0);
    if (buf.length < total) return;
    if (!buf.toString('latin1', 0, 12).startsWith('HTTP/1.1 200')) throw new Error(`bench: got ${buf.toString('latin1', 0, 200)}`);
    buf = buf.subarray(total);
    const w = waiter;
    waiter = null;
    w?.();
  });
  return {
    send: (r) =>
      new Promise<void>((res) => {
        waiter = res;
        s.write(r);
      }),
    close: () => s.destroy(),
  };
}

export async function runAb(otherDist: string, iterations: number, audit: 'file' | 'null'): Promise<void> {
  const dirs = [await mkdtemp(join(tmpdir(), 'lilith-ab-this-')), await mkdtemp(join(tmpdir(), 'lilith-ab-other-'))];
  const up = await startUpstreams();
  const mine = await startBenchProxy({ upstreams: up.ready, engine: 'fast', audit, dir: dirs[0] });
  // Both builds register the same metric names in prom-client's default registry (some when
  // their modules load): this build's go before the other build is loaded.
  promClient.register.clear();
  const otherModule = pathToFileURL(join(resolve(otherDist), 'bench', 'proxy-enforcer.js')).href;
  const other = (await import(otherModule)) as { startBenchProxy: (o: BenchProxyOptions) => Promise<BenchProxy> };
  const theirs = await other.startBenchProxy({ upstreams: up.ready, engine: 'fast', audit, dir: dirs[1] });
  const paths: Array<{ name: string; c: Awaited<ReturnType<typeof client>>; r: Buffer; t: number[] }> = [];
  for (const kind of ['http', 'mcp'] as const)
    for (const [name, port] of [
      ['direct', up.ready[kind]],
      ['bare relay', mine.ready.relay[kind]],
      ['other build', theirs.ready.lilith[kind]],
      ['this build', mine.ready.lilith[kind]],
    ] as const)
      paths.push({ name: `${kind} ${name}`, c: await client(port), r: REQUESTS[kind], t: [] });
  process.stdout.write(`\nA/B: this build against ${otherDist}, one process, ${iterations} requests per path, interleaved\n`);
  for (let i = 0; i < Math.min(500, iterations); i++) for (const p of paths) await p.c.send(p.r);
  for (let i = 0; i < iterations; i++)
    for (const p of paths) {
      const t0 = process.hrtime.bigint();
      await p.c.send(p.r);
      p.t.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
  const pct = (s: number[], q: number) => s[Math.min(s.length - 1, Math.floor((q / 100) * s.length))];
  const stats = paths.map((p) => {
    const s = [...p.t].sort((a, b) => a - b);
    return { p50: pct(s, 50), p99: pct(s, 99) };
  });
  for (let k = 0; k < paths.length; k++) {
    const direct = stats[k - (k % 4)];
    const st = stats[k];
    process.stdout.write(
      `  ${paths[k].name.padEnd(16)} p50 ${st.p50.toFixed(1).padStart(7)} µs  p99 ${st.p99.toFixed(0).padStart(6)} µs   added p50 ${(st.p50 - direct.p50).toFixed(1).padStart(6)} µs  p99 ${(st.p99 - direct.p99).toFixed(0).padStart(5)} µs\n`,
    );
  }
  for (const p of paths) p.c.close();
  await mine.stop();
  await theirs.stop();
  await up.stop();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
}
