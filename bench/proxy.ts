// `npm run bench -- proxy [--iterations N] [--seconds S] [--concurrency C] [--engine fast|wasm]`:
// latency the dataplane adds to an HTTP/1.1 keep-alive request and to an MCP
// tools/call (p50/p99, proxied minus direct, measured interleaved in the same
// run), and requests/s at saturation through the proxy vs direct.
// Everything runs in this process on loopback (client, proxy, upstream): the
// proxied numbers include the proxy's share of one event loop.
import http from 'node:http';
import net from 'node:net';
import { mkdtemp, rm, cp, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { readPolicyDir, toBundle } from '../pipeline/policy-source.js';
import { createAuthorizer, type EngineName } from '../enforcer/engine/index.js';
import { startDataplane } from '../enforcer/dataplane.js';
import { StaticOriginResolver } from '../enforcer/origin.js';
import { FileAuditSink } from '../enforcer/audit/sink.js';
import type { LilithConfig } from '../capsule/config.js';
import type { PolicySnapshot } from '../enforcer/snapshot.js';

export const summary = 'dataplane added latency (HTTP keep-alive, MCP tools/call; p50/p99 vs direct) and requests/s at saturation';

const MCP_BODY = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'read_file', arguments: { path: '/workspace/README.md' } } });
const MCP_RESULT = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: 'hello from the file server' }] } });

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
    if (!/^HTTP\/1\.1 200/.test(this.#buf.toString('latin1', 0, 12))) throw new Error(`unexpected response: ${this.#buf.toString('latin1', 0, 200)}`);
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

const us = (n: number) => `${n.toFixed(1).padStart(8)} µs`;

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { iterations: { type: 'string', default: '3000' }, seconds: { type: 'string', default: '3' }, concurrency: { type: 'string', default: '16' }, engine: { type: 'string', default: 'fast' }, audit: { type: 'string', default: 'file' } },
    allowPositionals: true,
    strict: false,
  });
  const iterations = Number(values.iterations);
  const seconds = Number(values.seconds);
  const concurrency = Number(values.concurrency);
  const engine = values.engine as EngineName;

  // Upstreams: a plain HTTP server and an MCP-shaped JSON-RPC server (JSON responses).
  const httpUp = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '11' }).end('hello world'));
  });
  const mcpUp = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(MCP_RESULT)) }).end(MCP_RESULT));
  });
  httpUp.keepAliveTimeout = mcpUp.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => httpUp.listen(0, '127.0.0.1', () => r()));
  await new Promise<void>((r) => mcpUp.listen(0, '127.0.0.1', () => r()));
  const httpPort = (httpUp.address() as net.AddressInfo).port;
  const mcpPort = (mcpUp.address() as net.AddressInfo).port;

  // The bundled policies, with the MCP upstream named "files".
  const dir = await mkdtemp(join(tmpdir(), 'lilith-bench-proxy-'));
  await cp('policies', join(dir, 'p'), { recursive: true });
  const cfgPath = join(dir, 'p', 'lilith.json');
  const cfg = JSON.parse(await readFile(cfgPath, 'utf8')) as LilithConfig;
  cfg.upstreams = { files: { address: `127.0.0.1:${mcpPort}`, kind: 'mcp' } };
  await writeFile(cfgPath, JSON.stringify(cfg));
  const src = await readPolicyDir(join(dir, 'p'));
  const bundle = toBundle(src);
  const authorizer = createAuthorizer(bundle, engine);
  const snap: PolicySnapshot = { watermark: 1, digest: 'bench', sourceCommit: null, expiresAt: new Date(Date.now() + 3600_000), config: cfg, entities: bundle.entities, authorizer, schema: src.schema };
  // --audit null measures the proxy without the audit writer (to see its share).
  const fileSink = new FileAuditSink(join(dir, 'audit.jsonl'));
  const audit = values.audit === 'null' ? { emit: () => undefined, dropped: () => 0, close: async () => undefined, flush: async () => undefined } : fileSink;
  const routes = new Map<number, number>();
  const dp = await startDataplane({
    snapshots: { get: () => snap },
    origin: new StaticOriginResolver({ destination: (peer) => ({ address: '127.0.0.1', port: routes.get(peer.localPort ?? 0) ?? 0, family: 4 }), facts: { pid: process.pid, cgroupPath: '/lilith/agents/coder' } }),
    audit,
    listen: { proxy: ['127.0.0.1:0', '127.0.0.1:0'], dns: null },
  });
  const [pHttp, pMcp] = dp.proxyAddresses.map((a) => a.port);
  routes.set(pHttp, httpPort);
  routes.set(pMcp, mcpPort);

  process.stdout.write(`engine ${authorizer.engine}; ${iterations} sequential requests per path (interleaved), saturation ${concurrency} connections × ${seconds}s\n`);
  const paths = [
    { name: 'http direct', port: httpPort, req: request('http') },
    { name: 'http proxied', port: pHttp, req: request('http') },
    { name: 'mcp direct', port: mcpPort, req: request('mcp') },
    { name: 'mcp proxied', port: pMcp, req: request('mcp') },
  ];
  const clients = await Promise.all(paths.map((p) => KeepAliveClient.connect(p.port)));
  const samples = paths.map(() => [] as number[]);
  // Warm-up (JIT, engine caches), then interleave so drift hits all paths alike.
  for (let i = 0; i < 300; i++) for (let k = 0; k < paths.length; k++) await clients[k].send(paths[k].req);
  for (let i = 0; i < iterations; i++) {
    for (let k = 0; k < paths.length; k++) {
      const t0 = process.hrtime.bigint();
      await clients[k].send(paths[k].req);
      samples[k].push(Number(process.hrtime.bigint() - t0) / 1000);
    }
  }
  for (const c of clients) c.close();
  const stats = samples.map((s) => {
    const sorted = [...s].sort((a, b) => a - b);
    return { p50: pct(sorted, 50), p99: pct(sorted, 99) };
  });
  process.stdout.write('\nlatency per request (keep-alive, one at a time)\n');
  for (let k = 0; k < paths.length; k++) process.stdout.write(`  ${paths[k].name.padEnd(14)} p50 ${us(stats[k].p50)}   p99 ${us(stats[k].p99)}\n`);
  process.stdout.write('added by the proxy (proxied − direct)\n');
  process.stdout.write(`  http           p50 ${us(stats[1].p50 - stats[0].p50)}   p99 ${us(stats[1].p99 - stats[0].p99)}\n`);
  process.stdout.write(`  mcp tools/call p50 ${us(stats[3].p50 - stats[2].p50)}   p99 ${us(stats[3].p99 - stats[2].p99)}\n`);

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
  process.stdout.write(`\nrequests/s at saturation (${concurrency} connections)\n`);
  for (const p of paths) process.stdout.write(`  ${p.name.padEnd(14)} ${Math.round(await saturate(p.port, p.req)).toString().padStart(8)} req/s\n`);

  await audit.flush();
  const lat = (await readFile(join(dir, 'audit.jsonl'), 'utf8').catch(() => ''))
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { latency_us: number; protocol: string }))
    .filter((e) => e.protocol === 'http' || e.protocol === 'mcp')
    .map((e) => e.latency_us)
    .sort((a, b) => a - b);
  if (lat.length) process.stdout.write(`\ndecision share (build + evaluate + taint, from the audit log): p50 ${us(pct(lat, 50))}   p99 ${us(pct(lat, 99))}   (${lat.length} decisions, ${audit.dropped()} audit events dropped)\n`);

  await dp.close();
  await fileSink.close();
  authorizer.dispose();
  httpUp.closeAllConnections();
  mcpUp.closeAllConnections();
  await new Promise<void>((r) => httpUp.close(() => r()));
  await new Promise<void>((r) => mcpUp.close(() => r()));
  await rm(dir, { recursive: true, force: true });
}
