// Agents in their own network namespace under BPF-LSM (test/kernel/netns.test.ts
// covers the same on the host in cgroup-only mode): a namespace + veth pair made
// in the guest, the node proxy address on the guest's lo, the real dataplane
// listening there, and Lilith's programs attached in bpf-lsm mode to the agent
// cgroup. A managed curl in the namespace is redirected, decided and audited
// (GET allowed, POST denied); the host's other addresses (the veth's host side,
// a listener on the node address) answer only through the proxy; a raw socket
// is refused by the LSM hook; and when the process that heart-beats is
// SIGKILLed the namespaced agent gets EPERM within TTL + one heartbeat.
import { execFile, execFileSync } from 'node:child_process';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { existsSync, realpathSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { attach, type Kernel, type KernelEvent } from '../../bpf/index.js';
import { createAuthorizer } from '../../cedar/index.js';
import type { LilithConfig } from '../../capsule/config.js';
import { createAgentNetns, ensureNodeAddress, removeNodeAddress, type AgentNetns } from '../../confine/netns.js';
import type { DecisionAuditEvent } from '../../enforcer/audit/event.js';
import type { PolicySnapshot } from '../../enforcer/control/index.js';
import { FileAuditSink } from '../../enforcer/daemon/index.js';
import { KernelOriginResolver, startDataplane, type Dataplane } from '../../enforcer/dataplane/index.js';
import { readPolicyDir, toBundle } from '../../pipeline/policy-source.js';
import { startDaemonLite } from '../../testkit/kernel-fixtures.js';
import { makeCgroup, makePinRoot, probe, probeBinary, runProbe, sleep, type ProbeLine, type TestCgroup } from '../../testkit/kernel.js';
import { Checks, type ScenarioContext, type ScenarioResult } from '../scenario.js';

export const description =
  'network namespaces under BPF-LSM: a namespaced agent (veth) redirected to the node proxy, decided + audited, host addresses unreachable, fail-closed on SIGKILL';
export const bootLsm = 'bpf';

const exec = promisify(execFile);
const EPERM = 1;
const NODE_ADDRESS = '169.254.77.1';
const ID = 7;
const TTL_MS = 1000;
const HEARTBEAT_MS = 250;

const show = (l: ProbeLine | undefined): string =>
  l
    ? `${l.op}: ${l.ok ? 'ok' : `errno ${l.errno} ${l.err}`}${l.reply ? ` reply=${l.reply.trim()}` : ''}${l.peer ? ` peer=${l.peer}` : ''}`
    : 'no output';

/** A TCP listener counting connections: nothing managed may ever reach it. */
async function counted(host: string, reply: string): Promise<{ port: number; hits: () => number; close(): Promise<void> }> {
  let hits = 0;
  const open = new Set<Socket>();
  const server: Server = createServer((s) => {
    hits++;
    open.add(s);
    s.on('close', () => open.delete(s));
    s.on('error', () => {});
    s.end(reply);
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  return {
    port: (server.address() as { port: number }).port,
    hits: () => hits,
    close: () =>
      new Promise<void>((r) => {
        for (const s of open) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A program and the shared objects the dynamic loader maps for it (ldd), as real paths. */
function execClosure(bin: string): string[] {
  const out = execFileSync('ldd', [bin], { encoding: 'utf8' });
  const libs = [...out.matchAll(/(\/\S+) \(0x/g)].map((m) => m[1]!);
  return [bin, ...libs].map((p) => realpathSync(p));
}

/** The bundled policies with the upstream named localhost and the coder registered by the agent cgroup. */
async function snapshotFor(root: string, dir: string, cgPath: string): Promise<PolicySnapshot> {
  await cp(join(root, 'policies'), dir, { recursive: true });
  const entities = JSON.parse(await readFile(join(dir, 'entities.json'), 'utf8')) as unknown[];
  entities.push({
    uid: { type: 'Host', id: 'localhost' },
    attrs: {},
    parents: [
      { type: 'Zone', id: 'allowlisted' },
      { type: 'Zone', id: 'internal' },
    ],
  });
  await writeFile(join(dir, 'entities.json'), JSON.stringify(entities));
  const config = JSON.parse(await readFile(join(dir, 'lilith.json'), 'utf8')) as LilithConfig;
  config.registrations = config.registrations
    .filter((r) => !r.spiffe_id.endsWith('/coder/node'))
    .map((r) => (r.spiffe_id.endsWith('/coder') ? { ...r, selectors: [`cgroup:${cgPath}`] } : r));
  await writeFile(join(dir, 'lilith.json'), JSON.stringify(config));
  const src = await readPolicyDir(dir);
  const bundle = toBundle(src);
  return {
    watermark: 1,
    digest: 'vm-netns',
    sourceCommit: null,
    expiresAt: new Date(Date.now() + 3600_000),
    config: JSON.parse(src.configText) as LilithConfig,
    entities: bundle.entities,
    authorizer: createAuthorizer(bundle),
    schema: src.schema,
  };
}

export async function run(ctx: ScenarioContext): Promise<ScenarioResult> {
  const c = new Checks();
  const numbers: Record<string, number | string | boolean> = { kernel: ctx.kernelRelease, ttlMs: TTL_MS, heartbeatMs: HEARTBEAT_MS };
  const cleanups: Array<() => unknown> = [];
  const t0 = Date.now();
  numbers.nodeUptimeAtStartMs = Math.round(process.uptime() * 1000);
  let kernel: Kernel | undefined;
  let ns: AgentNetns | undefined;
  let agent: TestCgroup | undefined;
  let dp: Dataplane | undefined;
  let audit: FileAuditSink | undefined;
  let lite: Awaited<ReturnType<typeof startDaemonLite>> | undefined;
  const events: KernelEvent[] = [];
  try {
    // ---- the namespace: iproute2 from the host share, veth from the cached kernel modules ----
    const ipBin = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].find(existsSync);
    const modules = await readFile('/proc/modules', 'utf8').catch(() => '');
    c.expect('iproute2 `ip` from the host share is usable in the guest', ipBin !== undefined, ipBin ?? 'no ip binary');
    let addedAddress = false;
    try {
      addedAddress = ensureNodeAddress(NODE_ADDRESS);
      ns = createAgentNetns('lvmns');
    } catch (err) {
      c.expect(
        'a namespace with a veth pair to the guest is created',
        false,
        `${(err as Error).message}; veth module ${/^veth /m.test(modules) ? 'loaded' : 'not loaded (the kernel cache predates veth: rerun after it is refetched)'}`,
      );
      return c.result();
    }
    cleanups.push(() => ns?.remove());
    if (addedAddress) cleanups.push(() => removeNodeAddress(NODE_ADDRESS));
    const { stdout: links } = await exec('ip', ['-n', ns.name, '-o', 'addr', 'show', 'dev', 'eth0']);
    c.expect(
      'a namespace with a veth pair to the guest is created',
      links.includes(ns.agentAddress),
      `${ns.name}: eth0 ${ns.agentAddress} ↔ ${ns.hostIf} ${ns.hostAddress}; node address ${NODE_ADDRESS} on lo`,
    );
    numbers.setupMs = Date.now() - t0;

    // ---- targets on the host side ----
    const upstream = createHttpServer((req, res) => {
      req.resume();
      req.on('end', () => res.end(`hello ${req.method} ${req.url}`));
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => upstream.close(r)));
    upstream.unref();
    const httpPort = (upstream.address() as { port: number }).port;
    const host = await counted('0.0.0.0', 'host\n');
    cleanups.push(() => host.close());
    const admin = await counted(NODE_ADDRESS, 'admin\n');
    cleanups.push(() => admin.close());

    // ---- enforcer: the real dataplane on the node address, programs in bpf-lsm mode ----
    agent = makeCgroup();
    const t1 = Date.now();
    const snapshot = await snapshotFor(ctx.projectRoot, join(ctx.workDir, 'policies'), `/${basename(agent.dir)}`);
    const auditPath = join(ctx.workDir, 'audit.jsonl');
    audit = new FileAuditSink(auditPath);
    const kernelRef: { k?: Kernel } = {};
    dp = await startDataplane({
      snapshots: { get: () => snapshot },
      origin: new KernelOriginResolver({ originalDestination: (peer) => kernelRef.k?.originalDestination(peer) ?? null }),
      audit,
      listen: { proxy: [`${NODE_ADDRESS}:0`], dns: `${NODE_ADDRESS}:0` },
      dnsUpstream: '127.0.0.1:9',
    });
    numbers.dataplaneMs = Date.now() - t1;
    const proxy = { address: NODE_ADDRESS, port: dp.proxyAddresses[0]!.port, dnsPort: dp.dnsAddress!.port };
    const pinRoot = makePinRoot();
    const t2 = Date.now();
    // A long TTL while the dataplane works in this process (a TCG guest can stall the event
    // loop for seconds); the fail-closed phase hands the heartbeat to a process with 1 s.
    kernel = await attach({ cgroupPath: agent.dir, pinRoot, mode: 'bpf-lsm', proxy, heartbeatTtlMs: 15000 });
    kernelRef.k = kernel;
    numbers.attachMs = Date.now() - t2;
    kernel.onEvent((e) => events.push(e));
    kernel.registerIdentity({ cgroup: agent.dir }, ID);
    // The exec allowlist is on (the default): the agent may run curl and map its libraries, nothing else.
    for (const p of execClosure('/usr/bin/curl')) kernel.allowExecPath(p);
    kernel.startHeartbeat();
    // The process whose SIGKILL is measured below starts now, while the agent's requests run
    // (it re-adopts the pinned programs and heart-beats too; TTL 1 s from here on).
    const litePending = startDaemonLite<{ adopted: boolean; mode: string }>(
      {
        cgroupPath: agent.dir,
        pinRoot,
        mode: 'bpf-lsm',
        heartbeatTtlMs: TTL_MS,
        heartbeatMs: HEARTBEAT_MS,
        proxy,
        identities: [{ selector: { cgroup: agent.dir }, identity: ID }],
      },
      (child) => cleanups.push(() => child.kill('SIGKILL')),
    );
    litePending.catch(() => undefined);
    c.expect(
      'the programs attach in bpf-lsm mode with every hook active',
      kernel.mode === 'bpf-lsm' && kernel.hooks.missing.length === 0,
      `mode=${kernel.mode} active=${kernel.hooks.active.length} missing=${JSON.stringify(kernel.hooks.missing)}`,
    );

    const nsenter = (argv: string[]): string[] => ['/usr/bin/nsenter', `--net=${ns!.path}`, ...argv];
    const managed = (argv: string[]): string[] => nsenter([probeBinary(false), 'cg', agent!.procs, ...argv]);
    const inAgent = async (argv: string[]): Promise<{ stdout: string; stderr: string }> => {
      const [bin, ...rest] = managed(['exec', ...argv]);
      return exec(bin!, rest, { timeout: 60_000 }).catch((e: { stdout?: string; stderr?: string; message: string }) => ({
        stdout: e.stdout ?? '',
        stderr: e.stderr ?? e.message,
      }));
    };
    const auditEvents = async (): Promise<DecisionAuditEvent[]> => {
      await audit!.flush();
      return (await readFile(auditPath, 'utf8'))
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as DecisionAuditEvent);
    };

    // The paths exist: unmanaged, the namespace reaches the host side of the veth.
    const unmanaged = await probe(nsenter([probeBinary(false), 'connect', ns.hostAddress, String(host.port)]));
    c.expect(
      'unmanaged in the namespace: the host side of the veth answers (the path exists)',
      unmanaged.reply?.trim() === 'host',
      show(unmanaged),
    );
    const baseHits = host.hits();

    // ---- HTTP decided and audited ----
    const t3 = Date.now();
    const url = `http://localhost:${httpPort}`;
    const ok = await inAgent(['/usr/bin/curl', '-sS', '--max-time', '30', `${url}/hello`]);
    const no = await inAgent(['/usr/bin/curl', '-sS', '--max-time', '30', '-X', 'POST', '--data', 'x', `${url}/upload`]);
    numbers.curlPairMs = Date.now() - t3;
    c.expect(
      "managed curl in the namespace: GET to the host's loopback server goes through the proxy and is allowed",
      ok.stdout === 'hello GET /hello',
      `${ok.stdout}${ok.stderr}`,
    );
    c.expect(
      'managed curl in the namespace: POST is denied by policy (403)',
      /"error":"forbidden"/.test(no.stdout),
      `${no.stdout}${no.stderr}`,
    );
    const http = (await auditEvents()).filter((e) => e.protocol === 'http');
    c.expect(
      'both requests audited with the destination recovered across the namespace and the cgroup identity',
      http.length === 2 &&
        http.every((e) => e.destination === `127.0.0.1:${httpPort}` && e.spiffe_id === 'spiffe://corp.example/agents/coder') &&
        http[0]!.decision === 'allow' &&
        http[1]!.decision === 'deny',
      JSON.stringify(http.map((e) => [e.action, e.decision, e.destination, e.spiffe_id, e.pid])),
    );

    // ---- other host addresses: only the proxy answers ----
    for (const [what, addr, port] of [
      ['host side of the veth', ns.hostAddress, host.port],
      ['node address, another port (admin)', NODE_ADDRESS, admin.port],
      ['a public address', '198.51.100.7', 80],
    ] as const) {
      const r = await probe(managed(['connect', addr, String(port)]));
      c.expect(
        `managed connect to the ${what} ${addr}:${port} reaches the proxy, never the listener`,
        r.peer === `${addr}:${port}` && !/^(host|admin)$/.test(r.reply?.trim() ?? ''),
        show(r),
      );
    }
    c.expect(
      'the host and admin listeners saw no managed connection',
      host.hits() === baseHits && admin.hits() === 0,
      `host ${host.hits() - baseHits}, admin ${admin.hits()}`,
    );
    const tcp = (await auditEvents()).filter((e) => e.protocol === 'tcp');
    c.expect(
      'each attempt was decided (deny) and audited',
      [`${ns.hostAddress}:${host.port}`, `${NODE_ADDRESS}:${admin.port}`].every((d) =>
        tcp.some((e) => e.destination === d && e.decision === 'deny'),
      ),
      JSON.stringify(tcp.map((e) => [e.destination, e.decision])),
    );
    const raw = await probe(managed(['raw']));
    let rawEvent: KernelEvent | undefined;
    for (let i = 0; i < 80 && !rawEvent; i++) {
      rawEvent = events.find((e) => e.kind === 'deny' && e.tgid === raw.pid);
      if (!rawEvent) await sleep(25);
    }
    c.expect(
      'a raw socket in the namespace is refused by the LSM (EPERM, event names the hook)',
      raw.errno === EPERM && rawEvent?.kind === 'deny' && rawEvent.hook.startsWith('socket_'),
      `${show(raw)}; event ${rawEvent?.kind === 'deny' ? `${rawEvent.hook}/${rawEvent.reason}` : 'none'}`,
    );

    // ---- fail closed: the heart-beating process is SIGKILLed ----
    lite = await litePending;
    const liteChild = lite.child;
    kernel.stopHeartbeat();
    c.expect(
      'a separate process re-adopts the pinned programs and takes over the heartbeat (TTL 1 s)',
      (lite.ready as { adopted: boolean }).adopted === true,
      JSON.stringify(lite.ready),
    );
    await sleep(TTL_MS + HEARTBEAT_MS);
    const alive = await probe(managed(['connect', '203.0.113.5', '80']));
    c.expect(
      'its heartbeat alone keeps the namespaced agent connected (to the proxy)',
      alive.errno !== EPERM && alive.peer === '203.0.113.5:80',
      show(alive),
    );
    const watcher = runProbe(managed(['until', 'denied', '6000', '203.0.113.9', '80']), { timeoutMs: 15_000 });
    await sleep(300);
    const killedNs = process.hrtime.bigint(); // CLOCK_MONOTONIC, the probe's clock
    liteChild.kill('SIGKILL');
    const denied = (await watcher).at(-1) as (ProbeLine & { mono_ns?: number; attempts?: number }) | undefined;
    const windowMs = denied?.ok && denied.mono_ns ? Number(BigInt(denied.mono_ns) - killedNs) / 1e6 : Number.NaN;
    numbers.failClosedMs = Math.round(windowMs);
    c.expect(
      `SIGKILL of the heart-beating process: EPERM in the namespace within TTL + one heartbeat (${TTL_MS + HEARTBEAT_MS} ms)`,
      denied?.ok === true && windowMs <= TTL_MS + HEARTBEAT_MS,
      `EPERM ${windowMs.toFixed(0)} ms after SIGKILL (${denied?.attempts ?? 0} connect attempts)`,
    );
    const still = await inAgent(['/usr/bin/curl', '-sS', '--max-time', '10', `${url}/hello`]);
    c.expect(
      'with no heartbeat, curl in the namespace fails (no bypass to the upstream)',
      still.stdout === '' && still.stderr !== '',
      `stdout=${JSON.stringify(still.stdout)} stderr=${still.stderr.trim().split('\n').at(-1)}`,
    );
  } catch (err) {
    c.expect('scenario ran to the end', false, (err as Error).stack ?? String(err));
  } finally {
    kernel?.detachAll();
    agent?.remove();
    for (const f of cleanups.reverse()) {
      try {
        await Promise.race([f(), sleep(2000)]);
      } catch {}
    }
    if (dp) await Promise.race([dp.close(), sleep(2000)]);
    if (audit) await Promise.race([audit.close(), sleep(2000)]);
    numbers.totalMs = Date.now() - t0;
    await writeFile(join(ctx.resultsDir, 'kernel-netns-numbers.json'), `${JSON.stringify(numbers, null, 2)}\n`);
    ctx.log(`numbers: ${JSON.stringify(numbers)}`);
  }
  return c.result();
}
