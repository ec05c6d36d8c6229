// `npm run bench -- flood [--iterations N] [--stalled N] [--hellos N] [--tunnels N] [--dns-rate Q] [--impatient R]`:
// one agent (coder) floods the dataplane with stalled connections (silent, and
// HTTP heads that never finish), TLS hellos that stall after their record
// header, permitted websocket tunnels held open, and DNS queries to a resolver
// that never answers — each kept up by reopening what the proxy cuts. Measured:
// the proxy process's fds and RSS before, during (peak) and after, and a second
// agent's (reader) keep-alive request latency through the proxy without the
// flood and during it, in the same run, interleaved with the direct path.
//
// Processes, as in deployment: the victim client here; the HTTP upstream, the
// flood's peers (websocket echo, silent resolver), the proxy, and the flooder
// each in their own (bench/child.ts).
import dgram from 'node:dgram';
import http from 'node:http';
import net from 'node:net';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { readPolicyDir, toBundle } from '../pipeline/policy-source.js';
import { createAuthorizer } from '../cedar/index.js';
import { startDataplane, StaticOriginResolver } from '../enforcer/dataplane/index.js';
import { FileAuditSink } from '../enforcer/daemon/index.js';
import type { LilithConfig } from '../capsule/config.js';
import type { PolicySnapshot } from '../enforcer/control/index.js';
import { serveOverIpc, startChild, type Part } from './child.js';
import { bundledPoliciesWithLocalhost } from './bench-policies.js';
import type { UpstreamPorts } from './proxy-upstreams.js';

export const summary =
  "one agent floods stalled connections, stalled TLS hellos, tunnels and DNS: the proxy's fds/RSS, and a second agent's p50/p99 with and without the flood";

const here = (name: string) => fileURLToPath(new URL(`./${name}.js`, import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

// ---- children -----------------------------------------------------------------

interface PeersReady {
  ws: number;
  resolver: number;
}
interface EnforcerOptions {
  role: 'enforcer';
  dir: string;
  http: number;
  peers: PeersReady;
}
interface EnforcerReady {
  pid: number;
  victim: number;
  stalled: number;
  tls: number;
  tunnel: number;
  dns: number;
}
interface FlooderOptions {
  role: 'flooder';
  proxy: EnforcerReady;
  stalled: number;
  hellos: number;
  tunnels: number;
  dnsRate: number;
  /** Connections opened per second that do not wait for the proxy to cut the previous ones (each dropped by the flooder after 50 ms). */
  impatient: number;
}
interface FloodStats {
  opened: number;
  cut: number;
  tunnelsUp: number;
  dnsSent: number;
  dnsRefused: number;
  dnsOther: number;
}
type ChildOptions = { role: 'peers' } | EnforcerOptions | FlooderOptions;

/** The flood's peers: a websocket-ish server (101, then echo) and a resolver that never answers. */
async function startPeers(): Promise<Part<PeersReady, null>> {
  const server = http.createServer((_q, res) => res.end('no upgrade'));
  const sockets = new Set<net.Socket>();
  server.on('upgrade', (_req, s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    s.on('data', (d) => s.write(d));
    s.on('end', () => s.end()); // a websocket server closes when its client does
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const resolver = dgram.createSocket('udp4');
  resolver.on('message', () => undefined);
  await new Promise<void>((r) => resolver.bind(0, '127.0.0.1', () => r()));
  return {
    ready: { ws: (server.address() as net.AddressInfo).port, resolver: resolver.address().port },
    stop: async () => {
      for (const s of sockets) s.destroy();
      server.close();
      resolver.close();
      return null;
    },
  };
}

const UPGRADE_POLICY = `@id("bench-upgrade-websocket")
permit (principal, action == Action::"upgrade", resource == Host::"localhost")
when { context has upgrade && context.upgrade == "websocket" };
`;

/** The dataplane on the bundled policies (+ a permitted websocket upgrade to localhost); four listeners stand in for the kernel's records. */
async function startEnforcer(o: EnforcerOptions): Promise<Part<EnforcerReady, number>> {
  const p = await bundledPoliciesWithLocalhost(o.dir);
  await writeFile(join(p, 'bench-upgrade.cedar'), UPGRADE_POLICY);
  const src = await readPolicyDir(p);
  const bundle = toBundle(src);
  const authorizer = createAuthorizer(bundle, 'fast');
  const snap: PolicySnapshot = {
    watermark: 1,
    digest: 'bench',
    sourceCommit: null,
    expiresAt: new Date(Date.now() + 3600_000),
    config: JSON.parse(src.configText) as LilithConfig,
    entities: bundle.entities,
    authorizer,
    schema: src.schema,
  };
  const audit = new FileAuditSink(join(o.dir, 'audit.jsonl'));
  const dest = (port: number) => ({ address: '127.0.0.1', port, family: 4 as const });
  const routes = new Map<number, number>();
  let victimPort = -1;
  const coder = new StaticOriginResolver({
    destination: (peer) => dest(routes.get(peer.localPort ?? 0) ?? 0),
    facts: { pid: process.pid, cgroupPath: '/lilith/agents/coder' },
  });
  const reader = new StaticOriginResolver({ destination: dest(o.http), facts: { pid: process.pid, cgroupPath: '/lilith/agents/reader' } });
  const dp = await startDataplane({
    snapshots: { get: () => snap },
    origin: {
      resolve: (peer, transport) => (transport === 'tcp' && peer.localPort === victimPort ? reader : coder).resolve(peer),
    },
    audit,
    listen: { proxy: Array.from({ length: 4 }, () => '127.0.0.1:0'), dns: '127.0.0.1:0' },
    dnsUpstream: `127.0.0.1:${o.peers.resolver}`,
  });
  const [victim, stalled, tls, tunnel] = dp.proxyAddresses.map((a) => a.port);
  victimPort = victim;
  routes.set(stalled, o.http);
  routes.set(tls, o.http);
  routes.set(tunnel, o.peers.ws);
  return {
    ready: { pid: process.pid, victim, stalled, tls, tunnel, dns: dp.dnsAddress!.port },
    stop: async () => {
      await dp.close();
      await audit.flush();
      const dropped = audit.dropped();
      await audit.close();
      authorizer.dispose();
      return dropped;
    },
  };
}

/** Keeps `n` connections of one kind open, reopening each one the proxy cuts. */
function keepOpen(n: number, port: number, first: Buffer | string | null, stats: FloodStats, stopped: () => boolean): Set<net.Socket> {
  const live = new Set<net.Socket>();
  const open = () => {
    if (stopped()) return;
    const s = net.connect(port, '127.0.0.1');
    stats.opened++;
    live.add(s);
    s.on('error', () => undefined);
    s.on('data', () => undefined);
    s.on('connect', () => first !== null && s.write(first));
    s.on('close', () => {
      live.delete(s);
      stats.cut++;
      // Straight back, as an attacker would (a short pause keeps the flooder itself from spinning).
      setTimeout(open, 20);
    });
  };
  for (let i = 0; i < n; i++) open();
  return live;
}

async function startFlooder(o: FlooderOptions): Promise<Part<FloodStats, FloodStats>> {
  const stats: FloodStats = { opened: 0, cut: 0, tunnelsUp: 0, dnsSent: 0, dnsRefused: 0, dnsOther: 0 };
  let stopped = false;
  const isStopped = () => stopped;
  const half = Math.floor(o.stalled / 2);
  const sets = [
    keepOpen(half, o.proxy.stalled, null, stats, isStopped), // silent
    keepOpen(o.stalled - half, o.proxy.stalled, 'GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ', stats, isStopped), // a head that never ends
    keepOpen(o.hellos, o.proxy.tls, Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]), stats, isStopped),
    keepOpen(
      o.tunnels,
      o.proxy.tunnel,
      'GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      stats,
      isStopped,
    ),
  ];
  const ping = setInterval(() => {
    for (const s of sets[3]) s.write('ping');
  }, 1000);
  const udp = dgram.createSocket('udp4');
  udp.on('message', (m) => ((m.readUInt16BE(2) & 0xf) === 5 ? stats.dnsRefused++ : stats.dnsOther++));
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
  // A query for an allowed name (forwarded, so it holds an in-flight slot until the resolver timeout).
  const q = Buffer.from([0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 9, ...Buffer.from('localhost'), 0, 0, 1, 0, 1]);
  let id = 0;
  const perTick = Math.round(o.dnsRate / 100);
  const dnsTimer = setInterval(() => {
    for (let i = 0; i < perTick; i++) {
      q.writeUInt16BE((id = (id + 1) & 0xffff), 0);
      udp.send(q, o.proxy.dns, '127.0.0.1');
      stats.dnsSent++;
    }
  }, 10);
  const tunnelCount = setInterval(() => (stats.tunnelsUp = sets[3].size), 500);
  // An attacker that does not wait for a refusal: a fixed rate of new connections, each dropped after 50 ms.
  const impatientPerTick = Math.round(o.impatient / 100);
  const impatientTimer = setInterval(() => {
    for (let i = 0; i < impatientPerTick; i++) {
      const s = net.connect(o.proxy.stalled, '127.0.0.1');
      stats.opened++;
      s.on('error', () => undefined);
      s.on('close', () => stats.cut++);
      setTimeout(() => s.destroy(), 50);
    }
  }, 10);
  return {
    ready: stats,
    stop: async () => {
      stopped = true;
      clearInterval(ping);
      clearInterval(dnsTimer);
      clearInterval(tunnelCount);
      clearInterval(impatientTimer);
      for (const set of sets) for (const s of set) s.destroy();
      udp.close();
      return stats;
    },
  };
}

async function startRole(o: ChildOptions): Promise<Part<unknown, unknown>> {
  if (o.role === 'peers') return startPeers();
  if (o.role === 'enforcer') return startEnforcer(o);
  return startFlooder(o);
}

if (process.argv[2] === '--serve-ipc') await serveOverIpc(startRole);

// ---- the bench -------------------------------------------------------------------

/** A keep-alive GET client: one request at a time, Content-Length responses. */
class Victim {
  #buf: Buffer = Buffer.alloc(0);
  #waiter: (() => void) | null = null;
  private constructor(readonly sock: net.Socket) {
    sock.setNoDelay(true);
    sock.on('data', (d: Buffer) => {
      this.#buf = this.#buf.length ? Buffer.concat([this.#buf, d]) : d;
      const end = this.#buf.indexOf('\r\n\r\n');
      if (end < 0 || !this.#waiter) return;
      const total = end + 4 + Number(/content-length: *(\d+)/i.exec(this.#buf.toString('latin1', 0, end))?.[1] ?? 0);
      if (this.#buf.length < total) return;
      if (!this.#buf.toString('latin1', 0, 12).startsWith('HTTP/1.1 200'))
        throw new Error(`victim got: ${this.#buf.toString('latin1', 0, 200)}`);
      this.#buf = this.#buf.subarray(total);
      const w = this.#waiter;
      this.#waiter = null;
      w();
    });
  }
  static connect(port: number): Promise<Victim> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(new Victim(s)));
      s.once('error', reject);
    });
  }
  static readonly REQ = Buffer.from('GET /hello HTTP/1.1\r\nHost: localhost\r\nUser-Agent: victim\r\n\r\n');
  send(): Promise<void> {
    return new Promise((resolve) => {
      this.#waiter = resolve;
      this.sock.write(Victim.REQ);
    });
  }
}

async function procUse(pid: number): Promise<{ fds: number; rssMiB: number }> {
  const fds = (await readdir(`/proc/${pid}/fd`)).length;
  const rss = Number(/^VmRSS:\s+(\d+)/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  return { fds, rssMiB: rss };
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** `iterations` requests on each path, interleaved; returns p50/p99 in µs per path. */
async function measure(paths: Victim[], iterations: number): Promise<Array<{ p50: number; p99: number }>> {
  const samples = paths.map(() => [] as number[]);
  for (let i = 0; i < iterations; i++)
    for (let k = 0; k < paths.length; k++) {
      const t0 = process.hrtime.bigint();
      await paths[k].send();
      samples[k].push(Number(process.hrtime.bigint() - t0) / 1000);
    }
  return samples.map((s) => {
    const sorted = s.sort((a, b) => a - b);
    return { p50: pct(sorted, 50), p99: pct(sorted, 99) };
  });
}

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      iterations: { type: 'string', default: '3000' },
      stalled: { type: 'string', default: '400' },
      hellos: { type: 'string', default: '300' },
      tunnels: { type: 'string', default: '100' },
      'dns-rate': { type: 'string', default: '5000' },
      impatient: { type: 'string', default: '0' },
    },
    allowPositionals: true,
    strict: false,
  });
  const iterations = Number(values.iterations);
  const dir = await mkdtemp(join(tmpdir(), 'lilith-bench-flood-'));
  const upstreams = await startChild<object, UpstreamPorts, null>(here('proxy-upstreams'), {});
  const peers = await startChild<ChildOptions, PeersReady, null>(here('flood'), { role: 'peers' });
  const proxy = await startChild<ChildOptions, EnforcerReady, number>(here('flood'), {
    role: 'enforcer',
    dir,
    http: upstreams.ready.http,
    peers: peers.ready,
  });
  const flood: Omit<FlooderOptions, 'role' | 'proxy'> = {
    stalled: Number(values.stalled),
    hellos: Number(values.hellos),
    tunnels: Number(values.tunnels),
    dnsRate: Number(values['dns-rate']),
    impatient: Number(values.impatient),
  };
  process.stdout.write(
    `\nflooder (agent coder): ${flood.stalled} stalled connections (half silent, half an unfinished head), ${flood.hellos} stalled TLS hellos, ${flood.tunnels} websocket tunnels, ${flood.dnsRate} DNS queries/s to a silent resolver; each cut connection reopened; ${flood.impatient} connections/s more that do not wait for a refusal\n` +
      `victim (agent reader): ${iterations} keep-alive GETs through the proxy, interleaved with the direct path; per-agent budgets: the defaults\n`,
  );
  const [direct, lilith] = await Promise.all([Victim.connect(upstreams.ready.http), Victim.connect(proxy.ready.victim)]);
  await measure([direct, lilith], 300); // warm-up
  const loadBefore = load();
  const before = await procUse(proxy.ready.pid);
  const quiet = await measure([direct, lilith], iterations);

  const flooder = await startChild<ChildOptions, FloodStats, FloodStats>(here('flood'), { role: 'flooder', proxy: proxy.ready, ...flood });
  await sleep(2000); // the flood ramps up: connections open, first detection deadlines pass
  let peak = await procUse(proxy.ready.pid);
  const sampler = setInterval(async () => {
    const u = await procUse(proxy.ready.pid).catch(() => peak);
    peak = { fds: Math.max(peak.fds, u.fds), rssMiB: Math.max(peak.rssMiB, u.rssMiB) };
  }, 200);
  const flooded = await measure([direct, lilith], iterations);
  clearInterval(sampler);
  const stats = await flooder.stop();
  let after = await procUse(proxy.ready.pid);
  for (let i = 0; i < 100 && after.fds > before.fds + 4; i++) {
    await sleep(50);
    after = await procUse(proxy.ready.pid);
  }
  const loadAfter = load();
  direct.sock.destroy();
  lilith.sock.destroy();
  const dropped = await proxy.stop();
  await peers.stop();
  await upstreams.stop();
  await rm(dir, { recursive: true, force: true });

  const us = (n: number) => `${n.toFixed(0).padStart(6)} µs`;
  process.stdout.write(`load average ${loadBefore} before, ${loadAfter} after\n`);
  process.stdout.write(
    `victim latency (end to end)          direct p50 / p99          through lilith p50 / p99      lilith added p50 / p99\n`,
  );
  for (const [label, r] of [
    ['without the flood', quiet],
    ['during the flood', flooded],
  ] as const)
    process.stdout.write(
      `  ${label.padEnd(34)} ${us(r[0].p50)} / ${us(r[0].p99)}     ${us(r[1].p50)} / ${us(r[1].p99)}     ${us(r[1].p50 - r[0].p50)} / ${us(r[1].p99 - r[0].p99)}\n`,
    );
  process.stdout.write(
    `proxy process: fds ${before.fds} before, ${peak.fds} peak during, ${after.fds} after; RSS ${before.rssMiB.toFixed(0)} MiB before, ${peak.rssMiB.toFixed(0)} MiB peak, ${after.rssMiB.toFixed(0)} MiB after\n` +
      `flood: ${stats.opened} connections opened, ${stats.cut} cut by the proxy, ${stats.tunnelsUp} tunnels open at the last count; DNS ${stats.dnsSent} sent, ${stats.dnsRefused} REFUSED (over the in-flight cap), ${stats.dnsOther} other answers; ${dropped} audit events dropped\n`,
  );
  process.stdout.write(
    `victim p99 through lilith during the flood vs without: ${us(flooded[1].p99)} vs ${us(quiet[1].p99)} (direct path alongside: ${us(flooded[0].p99)} vs ${us(quiet[0].p99)})\n`,
  );
}
