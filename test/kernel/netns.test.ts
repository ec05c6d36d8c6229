// Agents in their own network namespace (containers, pods, `lilith run
// --netns`): real namespaces with veth pairs made by this test, Lilith's cgroup
// programs rewriting every managed connect to the node proxy address (an
// address of the host on lo, reached through the veth and the namespace's
// default route), and the real dataplane listening there deciding and
// auditing. Targets: the host's loopback upstreams, the host side of the veth,
// a second namespace of this test.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer, type Server } from 'node:net';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { mkdirSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { attach, type Kernel } from '../../bpf/index.js';
import { makeCgroup, makePinRoot, probe, probeBinary, repoRoot, runProbe, sleep, type TestCgroup } from '../../testkit/kernel.js';
import { startDaemonLite } from '../../testkit/kernel-fixtures.js';
import { FileAuditSink } from '../../enforcer/daemon/audit-sink.js';
import { KernelOriginResolver } from '../../enforcer/dataplane/origin.js';
import { startDataplane, type Dataplane } from '../../enforcer/dataplane/dataplane.js';
import { createAgentNetns, ensureNodeAddress, removeNodeAddress, type AgentNetns } from '../../confine/netns.js';
import { MutableSnapshots, snapshotFromDir, testPolicyDir } from '../dataplane/helpers.js';
import { startDnsServer, startHttpUpstream, startTlsUpstream } from '../dataplane/upstreams.js';
import { startMcpServer } from '../dataplane/mcp-server.js';
import type { DecisionAuditEvent } from '../../enforcer/audit/event.js';

const run = promisify(execFile);
const agentScript = join(fileURLToPath(new URL('.', import.meta.url)), '..', 'dataplane', 'kernel-agent.js');
const EPERM = 1;

let skip: string | false = false;
let kernel: Kernel | undefined;
let pinRoot = '';
let daemon: ChildProcess | undefined;
let agent: TestCgroup | undefined;
let nsA: AgentNetns | undefined;
let nsB: AgentNetns | undefined;
let nodeAddress = '';
let addedAddress = false;
let dp: Dataplane;
let audit: FileAuditSink;
let dir: string;
let auditPath: string;
const cleanups: Array<() => Promise<void> | void> = [];
let httpPort = 0;
let tls: Awaited<ReturnType<typeof startTlsUpstream>>;
let files: Awaited<ReturnType<typeof startMcpServer>>;
let reports: Awaited<ReturnType<typeof startMcpServer>>;
let resolver: Awaited<ReturnType<typeof startDnsServer>>;
/** Listeners that must never see a managed connection: host (all addresses), "admin" on the node address, namespace B. */
const hits = { host: 0, admin: 0, other: 0 };
let hostPort = 0;
let adminPort = 0;
let otherPort = 0;
let otherServer: ChildProcess | undefined;
/**
 * Two pods' container cgroups below the agent cgroup, named as containerd's
 * systemd driver names them; the operator's metadata says pod 1 is in
 * namespace "agents" with service account "reviewer" and label app=reader,
 * pod 2 is in namespace "web".
 */
const POD1 = '6f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0';
const POD2 = '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
const CTR1 = 'c0ffee00'.repeat(8);
const CTR2 = 'deadbeef'.repeat(8);
const podCgroups: string[] = [];
let workloads = '';
const podCgroup = (uid: string, id: string) =>
  join(
    agent!.dir,
    'kubepods.slice',
    'kubepods-burstable.slice',
    `kubepods-burstable-pod${uid.replaceAll('-', '_')}.slice`,
    `cri-containerd-${id}.scope`,
  );

async function listener(host: string, onHit: () => void, reply: string): Promise<{ port: number; server: Server }> {
  const open = new Set<import('node:net').Socket>();
  const server = createServer((s) => {
    onHit();
    open.add(s);
    s.on('close', () => open.delete(s));
    s.on('error', () => {});
    s.end(reply);
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        server.close(() => r());
        for (const s of open) s.destroy();
      }),
  );
  return { port: (server.address() as { port: number }).port, server };
}

before(async () => {
  if (process.getuid?.() !== 0) {
    skip = 'needs root (cgroup BPF, network namespaces)';
    return;
  }
  execFileSync('make', ['-s', '-C', join(repoRoot, 'bpf')], { stdio: 'ignore' });
  probeBinary(true);
  // A node address private to this run, on lo (no dummy driver on every host).
  nodeAddress = `169.254.77.${100 + (process.pid % 150)}`;
  addedAddress = ensureNodeAddress(nodeAddress);
  const tag = (process.pid % 100000).toString(36);
  nsA = createAgentNetns(`lna${tag}`);
  nsB = createAgentNetns(`lnb${tag}`);

  const up = await startHttpUpstream();
  cleanups.push(() => up.close());
  httpPort = up.port;
  tls = await startTlsUpstream();
  cleanups.push(() => tls.close());
  files = await startMcpServer('files', {
    read_file: { args: ['path'], impl: () => 'id,name\n1,Alice Doe\n' },
    http_post: { args: ['url', 'body'], impl: () => 'posted' },
  });
  cleanups.push(() => files.close());
  reports = await startMcpServer('reports', { fetch_report: { args: ['report'], impl: () => 'revenue up 4%' } });
  cleanups.push(() => reports.close());
  resolver = await startDnsServer({ 'api.github.com': '140.82.112.5' });
  cleanups.push(() => resolver.close());
  hostPort = (await listener('0.0.0.0', () => hits.host++, 'host\n')).port;
  adminPort = (await listener(nodeAddress, () => hits.admin++, 'admin\n')).port;
  // Namespace B's own server, on B's address.
  otherServer = spawn(
    '/usr/bin/nsenter',
    [
      `--net=${nsB.path}`,
      process.execPath,
      '-e',
      `const s=require('net').createServer(c=>{process.stdout.write('hit\\n');c.end('other\\n')});s.listen(0,'${nsB.agentAddress}',()=>process.stdout.write('port '+s.address().port+'\\n'))`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  otherPort = await new Promise<number>((resolve, reject) => {
    let out = '';
    otherServer!.stdout!.on('data', (d) => {
      out += d;
      const m = /port (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
      hits.other = (out.match(/hit/g) ?? []).length;
    });
    otherServer!.on('exit', () => reject(new Error('namespace B server exited')));
  });

  agent = makeCgroup();
  const cgPath = '/' + basename(agent.dir);
  for (const [uid, id] of [
    [POD1, CTR1],
    [POD2, CTR2],
  ]) {
    mkdirSync(podCgroup(uid, id), { recursive: true });
    podCgroups.push(podCgroup(uid, id));
  }
  workloads = await mkdtemp(join(tmpdir(), 'lilith-workloads-'));
  await mkdir(join(workloads, 'pods'));
  await mkdir(join(workloads, 'containers'));
  await writeFile(
    join(workloads, 'pods', `${POD1}.json`),
    JSON.stringify({ namespace: 'agents', service_account: 'reviewer', name: 'reviewer-0', labels: { app: 'reader' } }),
  );
  await writeFile(
    join(workloads, 'pods', `${POD2}.json`),
    JSON.stringify({ namespace: 'web', service_account: 'reviewer', labels: { app: 'reader' } }),
  );
  await writeFile(join(workloads, 'containers', `${CTR1}.json`), JSON.stringify({ name: 'agent', image_id: 'ab'.repeat(32) }));
  dir = await testPolicyDir({
    entities: (list) =>
      list.map((e) => (e.uid.type === 'MCPServer' ? { ...e, parents: [...e.parents, { type: 'Zone', id: 'allowlisted' }] } : e)),
    config: (c) => {
      c.registrations = c.registrations
        .map((r) => (r.spiffe_id.endsWith('/coder') ? { ...r, selectors: [`cgroup:${cgPath}`] } : r))
        .filter((r) => !r.spiffe_id.endsWith('/coder/node'))
        // The reader: a container in pod 1, by SPIRE k8s selectors (more specific than the coder's cgroup alone).
        .map((r) =>
          r.spiffe_id.endsWith('/reader')
            ? { ...r, selectors: [`cgroup:${cgPath}`, 'k8s:ns:agents', 'k8s:sa:reviewer', 'k8s:pod-label:app:reader'] }
            : r,
        );
      c.upstreams = {
        files: { address: `127.0.0.1:${files.port}`, kind: 'mcp' },
        reports: { address: `127.0.0.1:${reports.port}`, kind: 'mcp' },
      };
    },
    policies: {
      'pods.cedar':
        '@id("readers-no-secret")\nforbid (principal in AgentGroup::"readers", action == Action::"GET", resource)\nwhen { context.path like "/secret*" };\n',
    },
  });
  auditPath = join(dir, 'audit.jsonl');
  audit = new FileAuditSink(auditPath);
  const snapshots = new MutableSnapshots(await snapshotFromDir(dir));
  const kernelRef: { k?: Kernel } = {};
  dp = await startDataplane({
    snapshots,
    origin: new KernelOriginResolver(
      { originalDestination: (peer) => kernelRef.k?.originalDestination(peer) ?? null },
      { workloadDir: workloads },
    ),
    audit,
    listen: { proxy: [`${nodeAddress}:0`], dns: `${nodeAddress}:0` },
    dnsUpstream: `127.0.0.1:${resolver.port}`,
  });
  pinRoot = makePinRoot();
  kernel = await attach({
    cgroupPath: agent.dir,
    pinRoot,
    mode: 'cgroup-only',
    proxy: { address: nodeAddress, port: dp.proxyAddresses[0].port, dnsPort: dp.dnsAddress!.port },
  });
  kernelRef.k = kernel;
  kernel.registerIdentity({ cgroup: agent.dir }, 7);
  kernel.startHeartbeat();
});

after(async () => {
  // Kernel and network objects first (synchronous): a slow close below must not leave them behind.
  daemon?.kill('SIGKILL');
  kernel?.detachAll();
  for (const leaf of podCgroups) {
    // Deepest first: the container scope, then each level up to the agent cgroup.
    for (let d = leaf; d !== agent!.dir; d = join(d, '..'))
      try {
        rmdirSync(d);
      } catch {}
  }
  agent?.remove();
  otherServer?.kill('SIGKILL');
  nsA?.remove();
  nsB?.remove();
  if (addedAddress) removeNodeAddress(nodeAddress);
  const bounded = (p: Promise<unknown> | unknown) => Promise.race([p, sleep(2000)]);
  if (dp) await bounded(dp.close());
  if (audit) await bounded(audit.close());
  for (const c of cleanups.reverse()) await bounded(c());
  if (dir) await rm(dir, { recursive: true, force: true });
  if (workloads) await rm(workloads, { recursive: true, force: true });
});

const inNs = (ns: AgentNetns, argv: string[]): string[] => ['/usr/bin/nsenter', `--net=${ns.path}`, ...argv];

/** A managed command in namespace A (nsenter → lilith-probe joins the agent cgroup, or `cgroup` below it → exec). */
function inAgent(cmd: string, args: string[], cgroup = agent!.dir): Promise<{ stdout: string; stderr: string; code: number }> {
  const [bin, ...argv] = inNs(nsA!, [probeBinary(false), 'cg', join(cgroup, 'cgroup.procs'), 'exec', cmd, ...args]);
  return run(bin, argv, { timeout: 60_000 }).then(
    (r) => ({ ...r, code: 0 }),
    (e: { stdout: string; stderr: string; code: number }) => ({ stdout: e.stdout, stderr: e.stderr, code: e.code }),
  );
}

/** lilith-probe in namespace A, managed (in the agent cgroup) or not. */
const probeA = (managed: boolean, ...args: string[]) =>
  probe(inNs(nsA!, [probeBinary(false), ...(managed ? ['cg', agent!.procs] : []), ...args]));

async function events(): Promise<DecisionAuditEvent[]> {
  await audit.flush();
  return (await readFile(auditPath, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as DecisionAuditEvent);
}

test('netns: unmanaged processes in the namespace reach the host side and namespace B (the paths exist)', {
  timeout: 40_000,
}, async (t) => {
  if (skip) return t.skip(skip);
  const host = await probeA(false, 'connect', nsA!.hostAddress, String(hostPort));
  assert.equal(host.reply, 'host', JSON.stringify(host));
  const self = await probeA(false, 'connect', '127.0.0.1', String(hostPort));
  assert.equal(self.ok, false, 'the host loopback is not the namespace loopback');
  hits.host = 0;
});

test('netns: curl in the namespace reaches the host-loopback HTTP server only through the proxy, decided and audited per request', {
  timeout: 40_000,
}, async (t) => {
  if (skip) return t.skip(skip);
  const ok = await inAgent('/usr/bin/curl', ['-sS', '--max-time', '20', `http://localhost:${httpPort}/hello`]);
  assert.equal(ok.stdout, 'hello GET /hello', ok.stderr);
  const denied = await inAgent('/usr/bin/curl', [
    '-sS',
    '--max-time',
    '20',
    '-X',
    'POST',
    '--data',
    'x',
    `http://localhost:${httpPort}/upload`,
  ]);
  assert.match(denied.stdout, /"error":"forbidden"/);
  const ev = (await events()).filter((e) => e.protocol === 'http');
  assert.deepEqual(
    ev.map((e) => [e.action, e.decision, e.destination, e.spiffe_id]),
    [
      ['Action::"GET"', 'allow', `127.0.0.1:${httpPort}`, 'spiffe://corp.example/agents/coder'],
      ['Action::"POST"', 'deny', `127.0.0.1:${httpPort}`, 'spiffe://corp.example/agents/coder'],
    ],
  );
  assert.ok(ev.every((e) => typeof e.pid === 'number' && e.pid !== process.pid));
});

test('netns: original destination, pid and identity are recovered across the namespace boundary', { timeout: 40_000 }, async (t) => {
  if (skip) return t.skip(skip);
  const r = await probeA(true, 'connect', '198.51.100.44', '8443');
  assert.equal(r.peer, '198.51.100.44:8443', `getpeername returns the original inside the namespace: ${JSON.stringify(r)}`);
  const ev = (await events()).filter((e) => e.destination === '198.51.100.44:8443');
  assert.equal(ev.length, 1, JSON.stringify(ev));
  assert.equal(ev[0].pid, r.pid, 'the pid the kernel recorded in the namespace (host pid namespace)');
  assert.equal(ev[0].spiffe_id, 'spiffe://corp.example/agents/coder');
});

test('netns: HTTPS decided on SNI and relayed intact', { timeout: 40_000 }, async (t) => {
  if (skip) return t.skip(skip);
  const r = await inAgent('/usr/bin/curl', ['-sS', '--max-time', '20', '--cacert', tls.certPath, `https://localhost:${tls.port}/hello?k`]);
  // localhost inside the namespace is resolved from /etc/hosts (no DNS); the connect to 127.0.0.1 is redirected.
  assert.equal(r.stdout, 'hello GET /hello?k', r.stderr);
  const ev = (await events()).filter((e) => e.protocol === 'tls').at(-1)!;
  assert.equal(ev.resource, 'Host::"localhost"');
  assert.equal(ev.decision, 'allow');
  assert.equal(ev.spiffe_id, 'spiffe://corp.example/agents/coder');
});

test('netns: the host side of the veth, namespace B and the admin listener on the node address are unreachable for the managed agent', {
  timeout: 40_000,
}, async (t) => {
  if (skip) return t.skip(skip);
  hits.host = 0;
  for (const [addr, port] of [
    [nsA!.hostAddress, hostPort],
    [nodeAddress, hostPort],
    [nsB!.agentAddress, otherPort],
    [nodeAddress, adminPort],
  ] as const) {
    const r = await inAgent(process.execPath, [agentScript, 'tcp', addr, String(port)]);
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { data?: string; error?: string };
    assert.ok(!/host|other|admin/.test(out.data ?? ''), `${addr}:${port} answered ${JSON.stringify(out)}`);
  }
  // A raw TCP probe too: what arrives is the proxy, never the listener.
  const raw = await probeA(true, 'connect', nsB!.agentAddress, String(otherPort));
  assert.notEqual(raw.reply, 'other');
  assert.deepEqual(hits, { host: 0, admin: 0, other: 0 });
  const tcp = (await events()).filter((e) => e.protocol === 'tcp');
  for (const dest of [`${nsB!.agentAddress}:${otherPort}`, `${nodeAddress}:${adminPort}`])
    assert.ok(
      tcp.some((e) => e.destination === dest && e.decision === 'deny'),
      `deny audited for ${dest}: ${JSON.stringify(tcp.map((e) => [e.destination, e.decision]))}`,
    );
});

test('netns: UDP other than DNS is refused with EPERM; raw and ICMP sockets too', { timeout: 40_000 }, async (t) => {
  if (skip) return t.skip(skip);
  const u = await probeA(true, 'udp', nsA!.hostAddress, '9999');
  assert.equal(u.errno, EPERM, JSON.stringify(u));
  assert.equal((await probeA(true, 'raw')).errno, EPERM);
  // ICMP ping sockets: a fresh namespace's ping_group_range refuses them first (EACCES); else the cgroup program (EPERM).
  const icmp = await probeA(true, 'icmp');
  assert.ok(icmp.errno === EPERM || icmp.errno === 13, JSON.stringify(icmp));
});

test('netns: DNS from the namespace is attributed to the agent (cgroup_skb egress record), decided and audited with its identity', {
  timeout: 40_000,
}, async (t) => {
  if (skip) return t.skip(skip);
  const ok = await inAgent(process.execPath, [agentScript, 'dns', '8.8.8.8', 'api.github.com']);
  const okOut = JSON.parse(ok.stdout.trim()) as { pid: number; rcode?: number; answers?: number };
  assert.equal(okOut.rcode, 0, `allowed name answered: ${ok.stdout}${ok.stderr}`);
  assert.equal(okOut.answers, 1);
  const no = await inAgent(process.execPath, [agentScript, 'dns', '9.9.9.9', 'exfil.evil.example']);
  const noOut = JSON.parse(no.stdout.trim()) as { pid: number; rcode?: number };
  assert.equal(noOut.rcode, 3, 'denied name: NXDOMAIN');
  assert.ok(resolver.seen.includes('api.github.com'), 'the allowed query was forwarded');
  assert.ok(!resolver.seen.includes('exfil.evil.example'), 'the denied query was not');
  const ev = (await events()).filter((e) => e.protocol === 'dns');
  assert.deepEqual(
    ev.map((e) => [e.resource, e.decision, e.spiffe_id, e.pid, e.destination]),
    [
      ['Host::"api.github.com"', 'allow', 'spiffe://corp.example/agents/coder', okOut.pid, '8.8.8.8:53'],
      ['Host::"exfil.evil.example"', 'deny', 'spiffe://corp.example/agents/coder', noOut.pid, '9.9.9.9:53'],
    ],
  );
});

test('netns: a datagram sent straight to the DNS front by an unmanaged process in the namespace is unattributed: refused, never forwarded', {
  timeout: 40_000,
}, async (t) => {
  if (skip) return t.skip(skip);
  const before = resolver.seen.length;
  const [bin, ...argv] = inNs(nsA!, [process.execPath, agentScript, 'dns', `${nodeAddress}:${dp.dnsAddress!.port}`, 'api.github.com']);
  const r = await run(bin, argv, { timeout: 30_000 });
  const out = JSON.parse(r.stdout.trim()) as { rcode?: number };
  assert.notEqual(out.rcode, 0, `answered although unattributed: ${r.stdout}`);
  assert.equal(resolver.seen.length, before, 'forwarded although unattributed');
  const last = (await events()).filter((e) => e.protocol === 'dns').at(-1)!;
  assert.equal(last.decision, 'deny');
  assert.ok(!last.spiffe_id, JSON.stringify(last));
});

test('netns: the MCP SDK client reproduces the seed sequence through the proxy (read_file, fetch_report allowed; http_post denied)', {
  timeout: 40_000,
}, async (t) => {
  if (skip) return t.skip(skip);
  const r = await inAgent(process.execPath, [
    agentScript,
    'seed',
    `http://127.0.0.1:${files.port}/mcp`,
    `http://127.0.0.1:${reports.port}/mcp`,
  ]);
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as {
    pid: number;
    read: string;
    report: string;
    post: { code: number; message: string };
  };
  assert.match(out.read, /Alice Doe/);
  assert.equal(out.report, 'revenue up 4%');
  assert.match(out.post.message, /taint-blocks-egress/);
  const tools = (await events()).filter((e) => e.protocol === 'mcp' && e.action !== 'Action::"mcp_session"');
  assert.deepEqual(
    tools.map((e) => [e.action, e.decision, e.pid]),
    [
      ['Action::"read_file"', 'allow', out.pid],
      ['Action::"fetch_report"', 'allow', out.pid],
      ['Action::"http_post"', 'deny', out.pid],
    ],
  );
});

test('netns: fail closed: without heartbeats the namespaced agent gets EPERM within the TTL; heartbeats restore it', {
  timeout: 40_000,
}, async (t) => {
  if (skip) return t.skip(skip);
  kernel!.stopHeartbeat();
  kernel!.setHeartbeat();
  const stoppedAt = Date.now();
  let denied: number | null = null;
  while (Date.now() - stoppedAt < 3000) {
    const r = await probeA(true, 'connect', '203.0.113.4', '80');
    if (r.errno === EPERM) {
      denied = Date.now() - stoppedAt;
      break;
    }
    await sleep(50);
  }
  kernel!.startHeartbeat();
  assert.ok(denied !== null, 'managed connect in the namespace was denied after the heartbeat went stale');
  assert.ok(denied <= 1000 + 500, `denied after ${denied} ms (TTL 1000)`);
  t.diagnostic(`stale heartbeat → EPERM in the namespace after ${denied} ms`);
  await sleep(300);
  // Traffic flows again, to the proxy (which denies this destination): no EPERM, never the host listener.
  const r = await probeA(true, 'connect', nsA!.hostAddress, String(hostPort));
  assert.notEqual(r.errno, EPERM, JSON.stringify(r));
  assert.notEqual(r.reply, 'host');
  assert.equal(hits.host, 0);
});

test('netns: a container in a pod-named cgroup is attested by its k8s selectors (pod UID from the path, namespace/SA/labels from the metadata directory) and decided as its registration', {
  timeout: 60_000,
}, async (t) => {
  if (skip) return t.skip(skip);
  const url = `http://localhost:${httpPort}/secret/report`;
  const curl = ['-sS', '--max-time', '20', url];
  const pod1 = await inAgent('/usr/bin/curl', curl, podCgroup(POD1, CTR1));
  assert.match(pod1.stdout, /"error":"forbidden"/, `pod 1 (reader by k8s selectors) denied: ${pod1.stdout}${pod1.stderr}`);
  const pod2 = await inAgent('/usr/bin/curl', curl, podCgroup(POD2, CTR2));
  assert.equal(pod2.stdout, 'hello GET /secret/report', `pod 2 (namespace web: only the coder's cgroup selector matches): ${pod2.stderr}`);
  const host = await inAgent('/usr/bin/curl', curl);
  assert.equal(host.stdout, 'hello GET /secret/report', host.stderr);
  const ev = (await events()).filter((e) => e.protocol === 'http' && e.destination === `127.0.0.1:${httpPort}`).slice(-3);
  assert.deepEqual(
    ev.map((e) => [e.spiffe_id, e.decision, e.policies?.[0] ?? null]),
    [
      ['spiffe://corp.example/agents/reader', 'deny', 'readers-no-secret'],
      ['spiffe://corp.example/agents/coder', 'allow', 'http-read-allowlisted'],
      ['spiffe://corp.example/agents/coder', 'allow', 'http-read-allowlisted'],
    ],
  );
});

test('netns: fail closed when the process that heart-beats is killed with SIGKILL: EPERM in the namespace within TTL + one heartbeat', {
  timeout: 40_000,
}, async (t) => {
  if (skip) return t.skip(skip);
  // A separate process takes over the heartbeat (re-adopting the pinned programs, as a restarted daemon does); then it is killed.
  const TTL_MS = 1000;
  const HEARTBEAT_MS = 250;
  const lite = await startDaemonLite<{ adopted: boolean }>(
    {
      cgroupPath: agent!.dir,
      pinRoot,
      mode: 'cgroup-only',
      heartbeatTtlMs: TTL_MS,
      heartbeatMs: HEARTBEAT_MS,
      proxy: { address: nodeAddress, port: dp.proxyAddresses[0].port, dnsPort: dp.dnsAddress!.port },
      identities: [{ selector: { cgroup: agent!.dir }, identity: 7 }],
    },
    (child) => (daemon = child),
  );
  assert.equal(lite.ready.adopted, true, 'the pinned programs were re-adopted');
  kernel!.stopHeartbeat();
  try {
    await sleep(TTL_MS + HEARTBEAT_MS);
    const alive = await probeA(true, 'connect', '203.0.113.5', '80');
    assert.notEqual(alive.errno, EPERM, `the other process's heartbeat keeps traffic flowing: ${JSON.stringify(alive)}`);
    const watcher = runProbe(
      ['/usr/bin/nsenter', `--net=${nsA!.path}`, probeBinary(false), 'cg', agent!.procs, 'until', 'denied', '5000', '203.0.113.9', '80'],
      { timeoutMs: 10_000 },
    );
    await sleep(300);
    const killedNs = process.hrtime.bigint(); // CLOCK_MONOTONIC, the probe's clock
    lite.child.kill('SIGKILL');
    await new Promise((r) => lite.child.once('exit', r));
    const r = (await watcher).at(-1) as { ok: boolean; mono_ns?: number; attempts?: number } | undefined;
    assert.ok(r?.ok && r.mono_ns, `no EPERM in the namespace within 5 s of SIGKILL: ${JSON.stringify(r)}`);
    const windowMs = Number(BigInt(r.mono_ns) - killedNs) / 1e6;
    t.diagnostic(
      `SIGKILL of the heart-beating process → EPERM in the namespace after ${windowMs.toFixed(0)} ms (bound ${TTL_MS + HEARTBEAT_MS} ms, ${r.attempts} connects)`,
    );
    assert.ok(windowMs <= TTL_MS + HEARTBEAT_MS, `EPERM ${windowMs.toFixed(0)} ms after SIGKILL`);
  } finally {
    kernel!.setHeartbeat();
    kernel!.startHeartbeat();
  }
});
