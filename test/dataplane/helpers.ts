// Shared fixtures for dataplane tests: a real policy directory (a copy of
// policies/ adjusted for local test ports), a snapshot built from it with the
// real cedar-wasm engine, a dataplane with a static origin (clients point at
// the proxy), and the audit file it writes.
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { readPolicyDir, toBundle } from '../../pipeline/policy-source.js';
import { createAuthorizer } from '../../cedar/index.js';
import type { PolicySnapshot, SnapshotSource } from '../../enforcer/control/snapshot.js';
import type { LilithConfig } from '../../capsule/config.js';
import type { Entity } from '../../cedar/types.js';
import { startDataplane, type Dataplane, type DataplaneOptions } from '../../enforcer/dataplane/dataplane.js';
import { StaticOriginResolver, type Destination, type PeerAddress } from '../../enforcer/dataplane/origin.js';
import { FileAuditSink } from '../../enforcer/daemon/audit-sink.js';
import type { DecisionAuditEvent } from '../../enforcer/audit/event.js';

export const CODER = { pid: process.pid, cgroupPath: '/lilith/agents/coder' };
export const READER = { pid: process.pid, cgroupPath: '/lilith/agents/reader' };

export class MutableSnapshots implements SnapshotSource {
  constructor(public current: PolicySnapshot | null) {}
  get(): PolicySnapshot | null {
    return this.current;
  }
}

export interface PolicyTweaks {
  /** Entities to add, or a function rewriting the list. */
  entities?: Entity[] | ((list: Entity[]) => Entity[]);
  config?: (c: LilithConfig) => void;
  /** Add Host::"localhost" to the allowlisted and internal zones (default true). */
  localhost?: boolean;
  /** Extra policy files (name → Cedar text) written next to the bundled ones. */
  policies?: Record<string, string>;
}

export const LOCALHOST_ENTITY: Entity = {
  uid: { type: 'Host', id: 'localhost' },
  attrs: {},
  parents: [
    { type: 'Zone', id: 'allowlisted' },
    { type: 'Zone', id: 'internal' },
  ],
};

/** Copies policies/ to a temp dir, adds entities and adjusts lilith.json. */
export async function testPolicyDir(tweaks: PolicyTweaks = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'lilith-dp-policies-'));
  await cp('policies', dir, { recursive: true });
  const entities = JSON.parse(await readFile(join(dir, 'entities.json'), 'utf8')) as Entity[];
  // The bundled policies reach no loopback service by default; these tests' local
  // upstreams stand for services a capsule lists, named "localhost".
  if (tweaks.localhost !== false) entities.push(LOCALHOST_ENTITY);
  const e = tweaks.entities;
  const next = typeof e === 'function' ? e(entities) : [...entities, ...(e ?? [])];
  await writeFile(join(dir, 'entities.json'), JSON.stringify(next, null, 1));
  const config = JSON.parse(await readFile(join(dir, 'lilith.json'), 'utf8')) as LilithConfig;
  tweaks.config?.(config);
  await writeFile(join(dir, 'lilith.json'), JSON.stringify(config, null, 1));
  for (const [name, text] of Object.entries(tweaks.policies ?? {})) await writeFile(join(dir, name), text);
  return dir;
}

let watermark = 1;

export async function snapshotFromDir(dir: string): Promise<PolicySnapshot> {
  const src = await readPolicyDir(dir);
  const bundle = toBundle(src);
  return {
    watermark: watermark++,
    digest: 'test',
    sourceCommit: null,
    expiresAt: new Date(Date.now() + 3600_000),
    config: JSON.parse(src.configText) as LilithConfig,
    entities: bundle.entities,
    authorizer: createAuthorizer(bundle, 'wasm'),
    schema: src.schema,
  };
}

export interface Harness {
  dp: Dataplane;
  origin: StaticOriginResolver;
  snapshots: MutableSnapshots;
  audit: FileAuditSink;
  auditPath: string;
  dir: string;
  /** The proxy's first listener. */
  proxy: { host: string; port: number };
  events(): Promise<DecisionAuditEvent[]>;
  /** Waits for active connections to drain to zero (bounded), returns the count seen. */
  settled(): Promise<number>;
  close(): Promise<void>;
}

export async function startHarness(opts: {
  tweaks?: PolicyTweaks;
  destination: Destination | ((peer: PeerAddress) => Destination | null);
  facts?: typeof CODER | null;
  listeners?: number;
  dns?: boolean;
  dnsUpstream?: string;
  extra?: Partial<DataplaneOptions>;
}): Promise<Harness> {
  // `extra.origin` (e.g. a KernelOriginResolver over recorded destinations) replaces the static origin for the dataplane.
  const dir = await testPolicyDir(opts.tweaks);
  const snapshots = new MutableSnapshots(await snapshotFromDir(dir));
  const auditPath = join(dir, 'audit', 'audit.jsonl');
  const audit = new FileAuditSink(auditPath);
  const origin = new StaticOriginResolver({ destination: opts.destination, facts: opts.facts === undefined ? CODER : opts.facts });
  const dp = await startDataplane({
    snapshots,
    origin,
    audit,
    listen: { proxy: Array.from({ length: opts.listeners ?? 1 }, () => '127.0.0.1:0'), dns: opts.dns ? '127.0.0.1:0' : null },
    dnsUpstream: opts.dnsUpstream,
    // Generous: on a loaded test machine a client may take a while between connect and its first write.
    detectTimeoutMs: 3000,
    ...opts.extra,
  });
  const h: Harness = {
    dp,
    origin,
    snapshots,
    audit,
    auditPath,
    dir,
    proxy: { host: '127.0.0.1', port: dp.proxyAddresses[0].port },
    async events() {
      await audit.flush();
      const text = await readFile(auditPath, 'utf8').catch(() => '');
      return text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as DecisionAuditEvent);
    },
    async settled() {
      for (let i = 0; i < 1000 && dp.activeConnections() > 0; i++) await new Promise((r) => setTimeout(r, 10));
      return dp.activeConnections();
    },
    async close() {
      await dp.close();
      await audit.close();
      snapshots.current?.authorizer.dispose();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return h;
}

export const loopback = (port: number): Destination => ({ address: '127.0.0.1', port, family: 4 });

export async function listen(server: net.Server | import('node:http').Server | import('node:tls').Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.address() as net.AddressInfo).port;
}

export async function closeServer(server: net.Server | import('node:http').Server): Promise<void> {
  (server as import('node:http').Server).closeAllConnections?.();
  await new Promise<void>((r) => server.close(() => r()));
}

/** Sends raw bytes on a fresh connection and collects everything until the peer closes or `ms` pass. */
export function rawExchange(
  port: number,
  chunks: Array<Buffer | string>,
  ms = 1000,
  opts: { endAfter?: boolean; gapMs?: number } = {},
): Promise<{ data: string; closed: boolean; reset: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let data = '';
    let reset = false;
    const finish = (closed: boolean) => {
      clearTimeout(t);
      s.destroy();
      resolve({ data, closed, reset });
    };
    const t = setTimeout(() => finish(false), ms);
    s.on('data', (d) => (data += d.toString('latin1')));
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ECONNRESET') reset = true;
    });
    s.on('close', () => finish(true));
    // The proxy ending its side (FIN) counts as closed: this socket is half-open by design.
    s.on('end', () => finish(true));
    s.on('connect', async () => {
      for (const c of chunks) {
        if (s.destroyed) return;
        s.write(c);
        if (opts.gapMs) await new Promise((r) => setTimeout(r, opts.gapMs));
      }
      if (opts.endAfter) s.end();
    });
  });
}
