// The dataplane with the kernel doing the redirect (host cgroup mode): agents
// run in a cgroup with Lilith's cgroup programs attached and talk to the real
// destinations; the kernel sends them to the proxy, which recovers the original
// destination and the process from bpf (KernelOriginResolver) and its identity
// from /proc facts matched against the capsule's registrations.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { attach, type Kernel } from '../../bpf/index.js';
import { makeCgroup, makePinRoot, probeBinary, repoRoot, type TestCgroup } from '../../testkit/kernel.js';
import { FileAuditSink } from '../../enforcer/daemon/audit-sink.js';
import { KernelOriginResolver } from '../../enforcer/dataplane/origin.js';
import { startDataplane, type Dataplane } from '../../enforcer/dataplane/dataplane.js';
import { MutableSnapshots, snapshotFromDir, testPolicyDir } from './helpers.js';
import { startDnsServer, startEchoServer, startHttpUpstream, startTlsUpstream } from './upstreams.js';
import { startMcpServer } from './mcp-server.js';
import type { DecisionAuditEvent } from '../../enforcer/audit/event.js';
import type { Entity } from '../../cedar/types.js';
import { readFile, rm } from 'node:fs/promises';

const run = promisify(execFile);
const agentScript = join(fileURLToPath(new URL('.', import.meta.url)), 'kernel-agent.js');

let skip: string | false = false;
let kernel: Kernel | undefined;
let agent: TestCgroup | undefined;
let dp: Dataplane;
let audit: FileAuditSink;
let dir: string;
let auditPath: string;
const cleanups: Array<() => Promise<void> | void> = [];
let httpPort = 0;
let tls: Awaited<ReturnType<typeof startTlsUpstream>>;
let files: Awaited<ReturnType<typeof startMcpServer>>;
let reports: Awaited<ReturnType<typeof startMcpServer>>;
let echoPort = 0;
let resolver: Awaited<ReturnType<typeof startDnsServer>>;

before(async () => {
  if (process.getuid?.() !== 0) {
    skip = 'needs root (cgroup BPF)';
    return;
  }
  try {
    execFileSync('make', ['-s', '-C', join(repoRoot, 'bpf')], { stdio: 'ignore' });
    probeBinary(true);
  } catch (err) {
    skip = `bpf objects or lilith-probe do not build: ${(err as Error).message}`;
    return;
  }
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
  const echo = await startEchoServer();
  cleanups.push(() => echo.close());
  echoPort = echo.port;
  resolver = await startDnsServer({ 'api.github.com': '140.82.112.5' });
  cleanups.push(() => resolver.close());

  agent = makeCgroup();
  const cgPath = '/' + basename(agent.dir);
  dir = await testPolicyDir({
    entities: (list: Entity[]) => [
      ...list.map((e) => (e.uid.type === 'MCPServer' ? { ...e, parents: [...e.parents, { type: 'Zone', id: 'allowlisted' }] } : e)),
      // Allowlisted too, so the opaque TCP test does not set UNTRUSTED before the seed sequence.
      {
        uid: { type: 'Endpoint', id: `127.0.0.1:${echoPort}` },
        attrs: {},
        parents: [
          { type: 'Zone', id: 'internal' },
          { type: 'Zone', id: 'allowlisted' },
        ],
      },
    ],
    config: (c) => {
      // The coder registration selects this test's agent cgroup (as /proc/<pid>/cgroup shows it).
      c.registrations = c.registrations
        .map((r) => (r.spiffe_id.endsWith('/coder') ? { ...r, selectors: [`cgroup:${cgPath}`] } : r))
        .filter((r) => !r.spiffe_id.endsWith('/coder/node'));
      c.upstreams = {
        files: { address: `127.0.0.1:${files.port}`, kind: 'mcp' },
        reports: { address: `127.0.0.1:${reports.port}`, kind: 'mcp' },
      };
    },
  });
  auditPath = join(dir, 'audit.jsonl');
  audit = new FileAuditSink(auditPath);
  const snapshots = new MutableSnapshots(await snapshotFromDir(dir));
  const kernelRef: { k?: Kernel } = {};
  dp = await startDataplane({
    snapshots,
    origin: new KernelOriginResolver({ originalDestination: (peer) => kernelRef.k?.originalDestination(peer) ?? null }),
    audit,
    listen: { proxy: ['127.0.0.1:0'], dns: '127.0.0.1:0' },
    dnsUpstream: `127.0.0.1:${resolver.port}`,
  });
  kernel = await attach({
    cgroupPath: agent.dir,
    pinRoot: makePinRoot(),
    mode: 'cgroup-only',
    proxy: { address: '127.0.0.1', port: dp.proxyAddresses[0].port, dnsPort: dp.dnsAddress!.port },
  });
  kernelRef.k = kernel;
  kernel.registerIdentity({ cgroup: agent.dir }, 7);
  kernel.startHeartbeat();
});

after(async () => {
  kernel?.detachAll();
  agent?.remove();
  if (dp) await dp.close();
  if (audit) await audit.close();
  for (const c of cleanups.reverse()) await c();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Runs a command as a managed process inside the agent cgroup. */
function inAgent(cmd: string, args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  return run(probeBinary(false), ['cg', agent!.procs, 'exec', cmd, ...args], { timeout: 60_000 }).then(
    (r) => ({ ...r, code: 0 }),
    (e: { stdout: string; stderr: string; code: number }) => ({ stdout: e.stdout, stderr: e.stderr, code: e.code }),
  );
}

async function events(): Promise<DecisionAuditEvent[]> {
  await audit.flush();
  return (await readFile(auditPath, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as DecisionAuditEvent);
}

test('kernel redirect: curl in the agent cgroup reaches the real HTTP server only through the proxy, decided per request', async (t) => {
  if (skip) return t.skip(skip);
  const ok = await inAgent('/usr/bin/curl', ['-sS', '--max-time', '20', `http://localhost:${httpPort}/hello`]);
  assert.equal(ok.stdout, 'hello GET /hello');
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
  assert.ok(
    ev.every((e) => typeof e.pid === 'number' && e.pid !== process.pid),
    'pid of the managed curl, from the kernel',
  );
});

test('kernel redirect: HTTPS decided on SNI and relayed intact', async (t) => {
  if (skip) return t.skip(skip);
  const r = await inAgent('/usr/bin/curl', ['-sS', '--max-time', '20', '--cacert', tls.certPath, `https://localhost:${tls.port}/hello?k`]);
  assert.equal(r.stdout, 'hello GET /hello?k');
  const ev = (await events()).filter((e) => e.protocol === 'tls').at(-1)!;
  assert.equal(ev.resource, 'Host::"localhost"');
  assert.equal(ev.decision, 'allow');
});

test('kernel redirect: DNS to any resolver is answered by the front (allowed forwarded, denied NXDOMAIN), opaque TCP relayed', async (t) => {
  if (skip) return t.skip(skip);
  const ok = await inAgent(process.execPath, [agentScript, 'dns', '8.8.8.8', 'api.github.com']);
  assert.deepEqual(JSON.parse(ok.stdout.trim()).rcode, 0);
  const no = await inAgent(process.execPath, [agentScript, 'dns', '9.9.9.9', 'exfil.evil.example']);
  assert.equal(JSON.parse(no.stdout.trim()).rcode, 3);
  assert.ok(resolver.seen.includes('api.github.com') && !resolver.seen.includes('exfil.evil.example'));
  const tcp = await inAgent(process.execPath, [agentScript, 'tcp', '127.0.0.1', String(echoPort)]);
  assert.equal(JSON.parse(tcp.stdout.trim()).data, 'opaque\x00bytes');
  const ev = await events();
  const d = ev.filter((e) => e.protocol === 'dns');
  assert.deepEqual(
    d.map((e) => [e.resource, e.decision, e.spiffe_id]),
    [
      ['Host::"api.github.com"', 'allow', 'spiffe://corp.example/agents/coder'],
      ['Host::"exfil.evil.example"', 'deny', 'spiffe://corp.example/agents/coder'],
    ],
  );
  assert.equal(ev.filter((e) => e.protocol === 'tcp').at(-1)!.decision, 'allow');
  assert.equal(dp.activeConnections(), 0);
});

// Last: the seed sequence leaves the agent tainted, and taint blocks every egress action after it (DNS, connects).
test('kernel redirect: the MCP SDK client reproduces the seed sequence (read_file, fetch_report allowed; http_post denied)', async (t) => {
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
  assert.equal(out.post.code, -32600);
  assert.match(out.post.message, /taint-blocks-egress/);
  const tools = (await events()).filter((e) => e.protocol === 'mcp' && e.action !== 'Action::"mcp_session"');
  assert.deepEqual(
    tools.map((e) => [e.action, e.decision, e.taint_after, e.pid]),
    [
      ['Action::"read_file"', 'allow', '0x0000000000000001', out.pid],
      ['Action::"fetch_report"', 'allow', '0x0000000000000003', out.pid],
      ['Action::"http_post"', 'deny', '0x0000000000000003', out.pid],
    ],
  );
});
