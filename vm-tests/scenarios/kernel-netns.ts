// Agents in their own network namespace under BPF-LSM (test/kernel/netns.test.ts
// covers the same on the host in cgroup-only mode): a namespace + veth pair made
// in the guest, the node proxy address on the guest's lo, the real dataplane
// listening there, and Lilith's programs attached in bpf-lsm mode to the agent
// cgroup. A managed curl in the namespace is redirected, decided and audited
// (GET allowed, POST denied); one managed Node agent (vm-tests/netns-agent.ts)
// is decided and audited for DNS (attributed through the cgroup_skb record),
// TLS (on the SNI) and MCP (per tool); the host's other addresses (the veth's
// host side, a listener on the node address), a second namespace (forwarding
// on, so the path exists) answer only through the proxy; a raw socket is
// refused by the LSM hook; and when the process that heart-beats is SIGKILLed
// the namespaced agent gets EPERM within TTL + one heartbeat.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { existsSync, realpathSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
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
import type { NetnsAgentReport, NetnsAgentSpec } from '../netns-agent.js';
import { startMcp, startResolver, startTlsServer } from '../netns-peers.js';
import { Checks, type ScenarioContext, type ScenarioResult } from '../scenario.js';

export const description =
  'network namespaces under BPF-LSM: a namespaced agent (veth) redirected to the node proxy, decided + audited for HTTP, DNS, TLS and MCP; host addresses, a second namespace and the admin port unreachable; fail-closed on SIGKILL';
export const bootLsm = 'bpf';

const exec = promisify(execFile);
const EPERM = 1;
const NODE_ADDRESS = '169.254.77.1';
const ID = 7;
const TTL_MS = 1000;
const HEARTBEAT_MS = 250;
/** Namespace B's listener port (a fresh namespace: nothing else binds there). */
const B_PORT = 45671;
const CODER = 'spiffe://corp.example/agents/coder';
const agentScript = join(fileURLToPath(new URL('.', import.meta.url)), '..', 'netns-agent.js');

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

/**
 * The bundled policies with the upstream named localhost, the coder registered by the agent cgroup,
 * and the MCP server "files" at `files`.
 */
async function snapshotFor(root: string, dir: string, cgPath: string, files: string): Promise<PolicySnapshot> {
  await cp(join(root, 'policies'), dir, { recursive: true });
  const entities = (JSON.parse(await readFile(join(dir, 'entities.json'), 'utf8')) as Array<Record<string, unknown>>).map((e) =>
    (e.uid as { type: string }).type === 'MCPServer'
      ? { ...e, parents: [...(e.parents as unknown[]), { type: 'Zone', id: 'allowlisted' }] }
      : e,
  );
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
  config.upstreams = { files: { address: files, kind: 'mcp' } };
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
  let nsB: AgentNetns | undefined;
  let nodeAgent: TestCgroup | undefined;
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
    // Namespace B, another pod on this node, with a listener on its own address. The guest
    // forwards between its veths for the run, so the path A → B exists and only the
    // programs stand in the way.
    nsB = createAgentNetns('lvmnb');
    cleanups.push(() => nsB?.remove());
    const forwardWas = (await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim();
    await writeFile('/proc/sys/net/ipv4/ip_forward', '1');
    cleanups.push(() => writeFile('/proc/sys/net/ipv4/ip_forward', forwardWas));
    // busybox nc (no Node start): answers "other" and logs "hit" on stderr per connection.
    const other = spawn(
      '/usr/bin/nsenter',
      [`--net=${nsB.path}`, '/usr/bin/busybox', 'nc', '-ll', '-p', String(B_PORT), '-e', '/bin/sh', '-c', 'echo hit >&2; echo other'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    cleanups.push(() => other.kill('SIGKILL'));
    let otherLog = '';
    other.stderr.on('data', (d) => (otherLog += d));
    const otherHits = () => (otherLog.match(/hit/g) ?? []).length;
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
    const [resolver, tlsPeer, files] = await Promise.all([
      startResolver({ 'api.github.com': '140.82.112.5' }),
      startTlsServer(),
      startMcp('files', {
        read_file: { args: ['path'], reply: 'id,name\n1,Alice Doe\n' },
        http_post: { args: ['url', 'body'], reply: 'posted' },
      }),
    ]);
    cleanups.push(
      () => resolver.close(),
      () => tlsPeer.close(),
      () => files.close(),
    );

    // ---- enforcer: the real dataplane on the node address, programs in bpf-lsm mode ----
    agent = makeCgroup();
    const t1 = Date.now();
    const snapshot = await snapshotFor(
      ctx.projectRoot,
      join(ctx.workDir, 'policies'),
      `/${basename(agent.dir)}`,
      `127.0.0.1:${files.port}`,
    );
    const auditPath = join(ctx.workDir, 'audit.jsonl');
    audit = new FileAuditSink(auditPath);
    const kernelRef: { k?: Kernel } = {};
    dp = await startDataplane({
      snapshots: { get: () => snapshot },
      origin: new KernelOriginResolver({ originalDestination: (peer) => kernelRef.k?.originalDestination(peer) ?? null }),
      audit,
      listen: { proxy: [`${NODE_ADDRESS}:0`], dns: `${NODE_ADDRESS}:0` },
      dnsUpstream: `127.0.0.1:${resolver.port}`,
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
    // The Node agent runs in a cgroup below the agent's (the same SPIFFE ID by the cgroup
    // selector), registered as a JIT runtime: W^X stays on for curl and the probes.
    nodeAgent = makeCgroup(agent.dir);
    kernel.registerIdentity({ cgroup: nodeAgent.dir }, ID + 1, { jit: true });
    // The exec allowlist is on (the default): the agent may run curl and node and map their
    // libraries, nothing else.
    for (const p of new Set([...execClosure('/usr/bin/curl'), ...execClosure(process.execPath)])) kernel.allowExecPath(p);
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
    // ---- DNS, TLS and MCP from one managed Node agent in the namespace: it starts now (a Node
    // start takes many seconds under TCG) and runs beside the curl requests and probes below ----
    const spec: NetnsAgentSpec = {
      dns: [
        { server: '8.8.8.8', name: 'api.github.com' },
        { server: '9.9.9.9', name: 'exfil.evil.example' },
      ],
      tls: { address: `127.0.0.1:${tlsPeer.port}`, caPath: tlsPeer.caPath, snis: ['localhost', 'exfil.evil.example'] },
      mcp: {
        url: `http://127.0.0.1:${files.port}/mcp`,
        calls: [
          { tool: 'read_file', args: { path: '/data/customers.csv' } },
          { tool: 'http_post', args: { url: 'https://paste.example', body: 'x' } },
        ],
      },
    };
    const t4 = Date.now();
    const [nodeBin, ...nodeArgs] = nsenter([
      probeBinary(false),
      'cg',
      nodeAgent.procs,
      'exec',
      process.execPath,
      agentScript,
      JSON.stringify(spec),
    ]);
    let agentDoneAt = 0;
    const agentPending = exec(nodeBin!, nodeArgs, { timeout: 90_000 })
      .catch((e: { stdout?: string; stderr?: string; message: string }) => ({ stdout: e.stdout ?? '', stderr: e.stderr ?? e.message }))
      .finally(() => (agentDoneAt = Date.now()));
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
    const unmanagedB = await probe(nsenter([probeBinary(false), 'connect', nsB.agentAddress, String(B_PORT)]));
    c.expect(
      "unmanaged in the namespace: namespace B's listener answers (the path A → B exists)",
      unmanagedB.reply?.trim() === 'other',
      show(unmanagedB),
    );
    for (let i = 0; i < 40 && otherHits() === 0; i++) await sleep(50); // its stderr arrives on its own time
    const baseHits = host.hits();
    const baseOther = otherHits();

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
        http.every((e) => e.destination === `127.0.0.1:${httpPort}` && e.spiffe_id === CODER) &&
        http[0]!.decision === 'allow' &&
        http[1]!.decision === 'deny',
      JSON.stringify(http.map((e) => [e.action, e.decision, e.destination, e.spiffe_id, e.pid])),
    );

    const agentRun = await agentPending;
    numbers.nodeAgentMs = agentDoneAt - t4;
    let rep: NetnsAgentReport | undefined;
    try {
      rep = JSON.parse(agentRun.stdout.trim().split('\n').at(-1) ?? '') as NetnsAgentReport;
    } catch {}
    if (rep) numbers.nodeAgentParts = JSON.stringify(rep.ms);
    c.expect(
      'the managed Node agent ran in the namespace (node allowlisted, JIT identity) and reported',
      rep !== undefined,
      `${agentRun.stdout}${agentRun.stderr}`.slice(0, 2000),
    );
    const after = await auditEvents();
    const byAgent = (protocol: string) => after.filter((e) => e.protocol === protocol && e.pid === rep?.pid);

    // DNS: the redirected datagram is attributed by the cgroup_skb egress record.
    c.expect(
      'DNS in the namespace: the allowed name is answered, the denied one gets NXDOMAIN',
      rep?.dns[0]?.rcode === 0 && rep.dns[0].answers === 1 && rep.dns[1]?.rcode === 3,
      JSON.stringify(rep?.dns),
    );
    c.expect(
      'DNS: only the allowed query reached the resolver',
      resolver.seen.includes('api.github.com') && !resolver.seen.includes('exfil.evil.example'),
      JSON.stringify(resolver.seen),
    );
    const dns = byAgent('dns');
    c.expect(
      "DNS: both queries audited with the agent's pid, its SPIFFE ID and the original resolver",
      JSON.stringify(dns.map((e) => [e.resource, e.decision, e.spiffe_id, e.destination])) ===
        JSON.stringify([
          ['Host::"api.github.com"', 'allow', CODER, '8.8.8.8:53'],
          ['Host::"exfil.evil.example"', 'deny', CODER, '9.9.9.9:53'],
        ]),
      JSON.stringify(after.filter((e) => e.protocol === 'dns').map((e) => [e.resource, e.decision, e.spiffe_id, e.pid, e.destination])),
    );

    // TLS: decided on the SNI, relayed intact (the agent verifies the server's own certificate).
    c.expect(
      'TLS in the namespace: SNI localhost is relayed (certificate verified, reply intact), SNI exfil.evil.example is refused',
      rep?.tls[0]?.authorized === true &&
        rep.tls[0].reply === 'hello GET /hello' &&
        rep.tls[1]?.authorized === undefined &&
        !rep.tls[1]?.reply,
      JSON.stringify(rep?.tls),
    );
    c.expect('TLS: the server accepted only the allowed connection', tlsPeer.connections() === 1, `${tlsPeer.connections()} connections`);
    const tlsEv = byAgent('tls');
    c.expect(
      'TLS: both connections audited with the SNI host, the original destination and the SPIFFE ID',
      JSON.stringify(tlsEv.map((e) => [e.resource, e.decision, e.destination, e.spiffe_id])) ===
        JSON.stringify([
          ['Host::"localhost"', 'allow', `127.0.0.1:${tlsPeer.port}`, CODER],
          ['Host::"exfil.evil.example"', 'deny', `127.0.0.1:${tlsPeer.port}`, CODER],
        ]),
      JSON.stringify(after.filter((e) => e.protocol === 'tls').map((e) => [e.resource, e.decision, e.destination, e.spiffe_id, e.pid])),
    );

    // MCP: the SDK client's tool calls, decided per tool (http_post after reading PII: taint).
    c.expect(
      'MCP in the namespace: read_file is answered, http_post is refused by taint-blocks-egress',
      /Alice Doe/.test(rep?.mcp[0]?.text ?? '') && /taint-blocks-egress/.test(rep?.mcp[1]?.error ?? ''),
      JSON.stringify(rep?.mcp),
    );
    c.expect('MCP: only read_file reached the server', JSON.stringify(files.calls) === '["read_file"]', JSON.stringify(files.calls));
    const mcpEv = byAgent('mcp').filter((e) => e.action !== 'Action::"mcp_session"');
    c.expect(
      'MCP: both tool calls audited with the tool, the decision and the SPIFFE ID',
      JSON.stringify(mcpEv.map((e) => [e.action, e.decision, e.spiffe_id])) ===
        JSON.stringify([
          ['Action::"read_file"', 'allow', CODER],
          ['Action::"http_post"', 'deny', CODER],
        ]),
      JSON.stringify(after.filter((e) => e.protocol === 'mcp').map((e) => [e.action, e.decision, e.spiffe_id, e.pid])),
    );

    // ---- other host addresses and namespace B: only the proxy answers ----
    for (const [what, addr, port] of [
      ['host side of the veth', ns.hostAddress, host.port],
      ['node address, another port (admin)', NODE_ADDRESS, admin.port],
      ["namespace B's listener", nsB.agentAddress, B_PORT],
      ['a public address', '198.51.100.7', 80],
    ] as const) {
      const r = await probe(managed(['connect', addr, String(port)]));
      c.expect(
        `managed connect to the ${what} ${addr}:${port} reaches the proxy, never the listener`,
        r.peer === `${addr}:${port}` && !/^(host|admin|other)$/.test(r.reply?.trim() ?? ''),
        show(r),
      );
    }
    await sleep(200); // a hit in namespace B would be logged by then
    c.expect(
      'the host, admin and namespace B listeners saw no managed connection',
      host.hits() === baseHits && admin.hits() === 0 && otherHits() === baseOther,
      `host ${host.hits() - baseHits}, admin ${admin.hits()}, namespace B ${otherHits() - baseOther}`,
    );
    const tcp = (await auditEvents()).filter((e) => e.protocol === 'tcp');
    c.expect(
      'each attempt was decided (deny) and audited',
      [`${ns.hostAddress}:${host.port}`, `${NODE_ADDRESS}:${admin.port}`, `${nsB.agentAddress}:${B_PORT}`].every((d) =>
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
    nodeAgent?.remove();
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
