// The dataplane with the kernel doing the redirect (host cgroup mode): agents
// run in a cgroup with Lilith's cgroup programs attached and talk to the real
// destinations; the kernel sends them to the proxy, which recovers the original
// destination and the process from bpf (KernelOriginResolver) and its identity
// from /proc facts matched against the capsule's registrations.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Entity } from '../../cedar/types.js';
import { AGENT_SCRIPT as agentScript, CODER_ID, kernelSkipReason, ManagedAgent } from './kernel-harness.js';
import { startDnsServer, startEchoServer, startHttpUpstream, startTlsUpstream } from './upstreams.js';
import { startMcpServer } from './mcp-server.js';

let skip: string | false = false;
let managed: ManagedAgent | undefined;
const cleanups: Array<() => Promise<void> | void> = [];
let httpPort = 0;
let tls: Awaited<ReturnType<typeof startTlsUpstream>>;
let files: Awaited<ReturnType<typeof startMcpServer>>;
let reports: Awaited<ReturnType<typeof startMcpServer>>;
let echoPort = 0;
let resolver: Awaited<ReturnType<typeof startDnsServer>>;

before(async () => {
  skip = kernelSkipReason();
  if (skip) return;
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

  managed = await ManagedAgent.start({
    dnsUpstream: `127.0.0.1:${resolver.port}`,
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
      c.upstreams = {
        files: { address: `127.0.0.1:${files.port}`, kind: 'mcp' },
        reports: { address: `127.0.0.1:${reports.port}`, kind: 'mcp' },
      };
    },
  });
});

after(async () => {
  await managed?.close();
  for (const c of cleanups.reverse()) await c();
});

const inAgent = (cmd: string, args: string[]) => managed!.exec(cmd, args);
const events = () => managed!.events();

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
      ['Action::"GET"', 'allow', `127.0.0.1:${httpPort}`, CODER_ID],
      ['Action::"POST"', 'deny', `127.0.0.1:${httpPort}`, CODER_ID],
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
      ['Host::"api.github.com"', 'allow', CODER_ID],
      ['Host::"exfil.evil.example"', 'deny', CODER_ID],
    ],
  );
  assert.equal(ev.filter((e) => e.protocol === 'tcp').at(-1)!.decision, 'allow');
  assert.equal(managed!.dp.activeConnections(), 0);
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
