// The enforcer half of `npm run bench -- proxy`: the dataplane on the bundled
// policies, one proxy listener per upstream (the listener port stands in for the
// kernel's original-destination record), plus a bare TCP relay per upstream
// (pipe both ways, nothing parsed) as the floor any userspace proxy in this
// place pays. Runs in its own process by default (see bench/child.ts), like the daemon.
import net from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readPolicyDir, toBundle } from '../pipeline/policy-source.js';
import { createAuthorizer, type EngineName } from '../cedar/index.js';
import { startDataplane, StaticOriginResolver } from '../enforcer/dataplane/index.js';
import { FileAuditSink } from '../enforcer/daemon/index.js';
import type { AuditSink } from '../enforcer/audit/event.js';
import type { LilithConfig } from '../capsule/config.js';
import type { PolicySnapshot } from '../enforcer/control/index.js';
import { serveOverIpc, type Part } from './child.js';
import { bundledPoliciesWithLocalhost } from './bench-policies.js';
import type { UpstreamPorts } from './proxy-upstreams.js';

export interface BenchProxyOptions {
  upstreams: UpstreamPorts;
  engine: EngineName;
  /** 'file' writes the audit log to `dir`/audit.jsonl; 'null' measures the proxy without the audit writer. */
  audit: 'file' | 'null';
  /** Scratch directory (policies copy, audit log). */
  dir: string;
}

export interface BenchProxyReady {
  lilith: UpstreamPorts;
  relay: UpstreamPorts;
  engine: string;
}

/** Resolves to the number of audit events dropped. */
export type BenchProxy = Part<BenchProxyReady, number>;

async function bareRelay(upstreamPort: number): Promise<net.Server> {
  const server = net.createServer((c) => {
    c.setNoDelay(true);
    const u = net.connect({ port: upstreamPort, host: '127.0.0.1', noDelay: true });
    c.on('error', () => u.destroy());
    u.on('error', () => c.destroy());
    c.pipe(u);
    u.pipe(c);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return server;
}

export async function startBenchProxy(o: BenchProxyOptions): Promise<BenchProxy> {
  // The bundled policies, with the MCP upstream named "files".
  const p = await bundledPoliciesWithLocalhost(o.dir);
  const cfgPath = join(p, 'lilith.json');
  const cfg = JSON.parse(await readFile(cfgPath, 'utf8')) as LilithConfig;
  cfg.upstreams = { files: { address: `127.0.0.1:${o.upstreams.mcp}`, kind: 'mcp' } };
  await writeFile(cfgPath, JSON.stringify(cfg));
  const src = await readPolicyDir(p);
  const bundle = toBundle(src);
  const authorizer = createAuthorizer(bundle, o.engine);
  const snap: PolicySnapshot = {
    watermark: 1,
    digest: 'bench',
    sourceCommit: null,
    expiresAt: new Date(Date.now() + 3600_000),
    config: cfg,
    entities: bundle.entities,
    authorizer,
    schema: src.schema,
  };
  const fileSink = o.audit === 'file' ? new FileAuditSink(join(o.dir, 'audit.jsonl')) : null;
  const audit: AuditSink = fileSink ?? { emit: () => undefined, dropped: () => 0, close: async () => undefined };
  const routes = new Map<number, number>();
  const dp = await startDataplane({
    snapshots: { get: () => snap },
    origin: new StaticOriginResolver({
      destination: (peer) => ({ address: '127.0.0.1', port: routes.get(peer.localPort ?? 0) ?? 0, family: 4 }),
      facts: { pid: process.pid, cgroupPath: '/lilith/agents/coder' },
    }),
    audit,
    listen: { proxy: ['127.0.0.1:0', '127.0.0.1:0'], dns: null },
  });
  const [http, mcp] = dp.proxyAddresses.map((a) => a.port);
  routes.set(http, o.upstreams.http);
  routes.set(mcp, o.upstreams.mcp);
  const relays = [await bareRelay(o.upstreams.http), await bareRelay(o.upstreams.mcp)];
  const port = (s: net.Server) => (s.address() as net.AddressInfo).port;
  return {
    ready: { lilith: { http, mcp }, relay: { http: port(relays[0]), mcp: port(relays[1]) }, engine: authorizer.engine },
    stop: async () => {
      for (const r of relays) r.close();
      await dp.close();
      await fileSink?.flush();
      const dropped = audit.dropped();
      await fileSink?.close();
      authorizer.dispose();
      return dropped;
    },
  };
}

if (process.argv[2] === '--serve-ipc') await serveOverIpc(startBenchProxy);
