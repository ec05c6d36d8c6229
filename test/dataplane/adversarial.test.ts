// Adversarial corpus (issue 14): each case is sent through the proxy, on the
// bundled policies, to a real upstream (Node's http server, Python's
// http.server, the MCP SDK's streamable HTTP server). For each it records what
// the policy said (audit event), what reached the upstream, and asserts that
// nothing reached an upstream that the decision did not permit, in the form
// that was decided.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHarness, loopback, rawExchange, type Harness } from './helpers.js';
import { startHttpUpstream, startEchoServer, type HttpUpstream } from './upstreams.js';
import { startMcpServer, type TestMcpServer } from './mcp-server.js';
import type { DecisionAuditEvent } from '../../enforcer/audit/event.js';

const CODER_ID = 'spiffe://corp.example/agents/coder';
let node: HttpUpstream;
let mcp: TestMcpServer;
let py: { port: number; log: string[]; close(): void } | null = null;
let h: Harness;
/** Proxy listener port → upstream port (the listener stands in for the kernel's original destination). */
const routes = new Map<number, number>();
let nodePort = 0;
let mcpPort = 0;
let pyPort = 0;
let undeclaredMcpPort = 0;
let other: TestMcpServer;

async function startPython(): Promise<typeof py> {
  const dir = mkdtempSync(join(tmpdir(), 'lilith-py-'));
  writeFileSync(join(dir, 'secret'), 'the secret file\n');
  writeFileSync(join(dir, 'hello'), 'hello from python\n');
  const port = await new Promise<number>((r) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => r(p));
    });
  });
  const child: ChildProcess = spawn('python3', ['-u', '-m', 'http.server', String(port), '--bind', '127.0.0.1', '--directory', dir], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const log: string[] = [];
  child.stderr!.on('data', (d: Buffer) => log.push(...d.toString().split('\n').filter(Boolean)));
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        r(true);
      });
      s.on('error', () => r(false));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    log,
    close: () => {
      child.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

before(async () => {
  node = await startHttpUpstream();
  mcp = await startMcpServer('files', {
    read_file: { args: ['path'], impl: (a) => `contents of ${a.path}` },
    http_post: { args: ['url'], impl: () => 'posted' },
    run_command: { args: ['command'], impl: () => 'ran' },
  });
  other = await startMcpServer('other', { run_command: { args: ['command'], impl: () => 'ran' } });
  py = await startPython().catch((err: Error) => {
    process.stdout.write(`# python3 http.server not started: ${err.message}\n`);
    return null;
  });
  h = await startHarness({
    listeners: 4,
    destination: (peer) => {
      const up = routes.get(peer.localPort ?? 0);
      return up ? loopback(up) : null;
    },
    tweaks: {
      entities: [
        { uid: { type: 'Host', id: 'outside.test' }, attrs: {}, parents: [{ type: 'Zone', id: 'allowlisted' }] },
        { uid: { type: 'Host', id: '127.0.0.1' }, attrs: {}, parents: [{ type: 'Zone', id: 'allowlisted' }] },
      ],
      config: (c) => {
        c.upstreams = { files: { address: `127.0.0.1:${mcp.port}`, kind: 'mcp' } };
      },
    },
    extra: { detectTimeoutMs: 400 },
  });
  const ports = h.dp.proxyAddresses.map((a) => a.port);
  [nodePort, mcpPort, pyPort, undeclaredMcpPort] = ports;
  routes.set(nodePort, node.port);
  routes.set(mcpPort, mcp.port);
  if (py) routes.set(pyPort, py.port);
});

after(async () => {
  await h.close();
  await node.close();
  await mcp.close();
  await other.close();
  py?.close();
});

/** The audit events written since `from`. */
async function eventsSince(from: number): Promise<DecisionAuditEvent[]> {
  return (await h.events()).slice(from);
}

const send = (port: number, data: Array<string | Buffer> | string, ms = 1500, gapMs?: number) =>
  rawExchange(port, typeof data === 'string' ? [data] : data, ms, { gapMs });

const urls = () => node.requests.map((r) => `${r.method} ${r.url}`);

interface Case {
  name: string;
  bytes: Array<string | Buffer> | string;
  /** What the client must see. */
  reply: RegExp | 'reset';
  /** An audit event matching this must be written. */
  audit: (e: DecisionAuditEvent) => boolean;
  gapMs?: number;
}

const H = 'Host: localhost\r\n';

test('HTTP to Node: smuggling, framing and unrecognised-protocol cases never reach the upstream undecided', async () => {
  const cases: Case[] = [
    {
      name: 'leading CRLF',
      bytes: `\r\nPOST /upload HTTP/1.1\r\n${H}Content-Length: 1\r\n\r\nx`,
      reply: /^HTTP\/1\.1 400/,
      audit: (e) => /malformed/.test(e.reason ?? ''),
    },
    {
      name: 'unknown method',
      bytes: `FOO /upload HTTP/1.1\r\n${H}\r\n`,
      reply: /^HTTP\/1\.1 403/,
      audit: (e) => e.action === 'Action::"FOO"' && e.decision === 'deny',
    },
    {
      name: 'lowercase method',
      bytes: `post /upload HTTP/1.1\r\n${H}\r\n`,
      reply: /^HTTP\/1\.1 403/,
      audit: (e) => e.action === 'Action::"post"',
    },
    {
      // Decided as h2c (Action::"connect", context.protocol "h2c"): no policy here permits it.
      name: 'HTTP/2 preface (h2c prior knowledge)',
      bytes: 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
      reply: 'reset',
      audit: (e) => e.action === 'Action::"connect"' && e.decision === 'deny' && e.protocol === 'http',
    },
    {
      name: 'pause inside the first bytes',
      bytes: ['PO', 'ST /upload HTTP/1.1\r\n'],
      gapMs: 800,
      reply: 'reset',
      audit: (e) => /not received within/.test(e.reason ?? ''),
    },
    { name: 'silence', bytes: [], reply: 'reset', audit: (e) => /first bytes not received within/.test(e.reason ?? '') },
    {
      name: 'CL.TE',
      bytes: `POST /api/echo HTTP/1.1\r\n${H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nPOST /upload HTTP/1.1\r\n${H}\r\n`,
      reply: /^HTTP\/1\.1 400/,
      audit: (e) => /Transfer-Encoding and Content-Length/.test(e.reason ?? ''),
    },
    {
      name: 'TE.CL',
      bytes: `POST /api/echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n1\r\nx\r\n0\r\n\r\n`,
      reply: /^HTTP\/1\.1 400/,
      audit: (e) => /Transfer-Encoding and Content-Length/.test(e.reason ?? ''),
    },
    {
      name: 'TE obfuscated',
      bytes: `POST /api/echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`,
      reply: /^HTTP\/1\.1 400/,
      audit: (e) => /Transfer-Encoding/.test(e.reason ?? ''),
    },
    {
      name: 'duplicate Content-Length',
      bytes: `POST /api/echo HTTP/1.1\r\n${H}Content-Length: 1\r\nContent-Length: 30\r\n\r\nx`,
      reply: /^HTTP\/1\.1 400/,
      audit: (e) => /conflicting Content-Length/.test(e.reason ?? ''),
    },
    {
      name: 'obs-fold',
      bytes: `GET /hello HTTP/1.1\r\n${H}X-A: a\r\n b\r\n\r\n`,
      reply: /^HTTP\/1\.1 400/,
      audit: (e) => /folding/.test(e.reason ?? ''),
    },
    {
      name: 'bare LF',
      bytes: `GET /hello HTTP/1.1\n${H}\r\n`,
      reply: /^HTTP\/1\.1 400/,
      audit: (e) => /bare CR or LF|malformed/.test(e.reason ?? ''),
    },
    {
      name: 'NUL in a header',
      bytes: `GET /hello HTTP/1.1\r\n${H}X-A: a\x00b\r\n\r\n`,
      reply: /^HTTP\/1\.1 400/,
      audit: (e) => /control character/.test(e.reason ?? ''),
    },
    {
      name: 'GET with a body smuggling a request',
      bytes: `GET /hello HTTP/1.1\r\n${H}Content-Length: 37\r\n\r\nPOST /upload HTTP/1.1\r\nHost: x\r\n\r\n`,
      reply: /^HTTP\/1\.1 400/,
      audit: (e) => /carries a body/.test(e.reason ?? ''),
    },
    {
      name: 'absolute form naming another host',
      bytes: `GET http://api.github.com/hello HTTP/1.1\r\n${H}\r\n`,
      reply: /^HTTP\/1\.1 400/,
      audit: (e) => /another authority/.test(e.reason ?? ''),
    },
    {
      name: 'CONNECT',
      bytes: `CONNECT 10.0.0.1:22 HTTP/1.1\r\nHost: 10.0.0.1:22\r\n\r\n`,
      reply: /^HTTP\/1\.1 405/,
      audit: (e) => /CONNECT/.test(e.reason ?? ''),
    },
    {
      name: 'Upgrade: websocket (no policy permits it)',
      bytes: `GET /hello HTTP/1.1\r\n${H}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      reply: /^HTTP\/1\.1 403/,
      audit: (e) => e.action === 'Action::"upgrade"' && e.decision === 'deny',
    },
    {
      name: 'Upgrade: h2c',
      bytes: `GET /hello HTTP/1.1\r\n${H}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n`,
      reply: /^HTTP\/1\.1 403/,
      audit: (e) => e.action === 'Action::"upgrade"' && e.decision === 'deny',
    },
    {
      name: 'Expect other than 100-continue',
      bytes: `POST /api/echo HTTP/1.1\r\n${H}Expect: something\r\nContent-Length: 1\r\n\r\nx`,
      reply: /^HTTP\/1\.1 417/,
      audit: (e) => /Expect/.test(e.reason ?? ''),
    },
    {
      name: 'oversized head',
      bytes: `GET / HTTP/1.1\r\n${H}X-Big: ${'a'.repeat(40_000)}\r\n\r\n`,
      reply: /^HTTP\/1\.1 431/,
      audit: (e) => /exceeds/.test(e.reason ?? ''),
    },
    {
      name: 'dot segments escape /api/',
      bytes: `POST /api/../upload HTTP/1.1\r\n${H}Content-Length: 1\r\n\r\nx`,
      reply: /^HTTP\/1\.1 403/,
      audit: (e) => e.action === 'Action::"POST"' && e.decision === 'deny',
    },
    {
      name: 'encoded dot segments escape /api/',
      bytes: `POST /api/%2e%2E/upload HTTP/1.1\r\n${H}Content-Length: 1\r\n\r\nx`,
      reply: /^HTTP\/1\.1 403/,
      audit: (e) => e.action === 'Action::"POST"' && e.decision === 'deny',
    },
  ];
  const before = urls().length;
  const table: string[] = [];
  for (const c of cases) {
    const from = (await h.events()).length;
    const r = await send(nodePort, c.bytes, 2500, c.gapMs);
    const evs = await eventsSince(from);
    const ev = evs.find(c.audit);
    if (c.reply === 'reset')
      assert.ok(r.reset || (r.closed && r.data === ''), `${c.name}: reset, got ${JSON.stringify(r.data.slice(0, 80))}`);
    else assert.match(r.data, c.reply, `${c.name}: reply`);
    assert.ok(ev, `${c.name}: audit event (got ${JSON.stringify(evs.map((e) => [e.action, e.decision, e.reason]))})`);
    assert.equal(ev.decision, 'deny', c.name);
    table.push(`${c.name}: policy ${ev.decision} ${ev.action} (${ev.reason ?? ev.policies.join(',')}); upstream saw nothing`);
  }
  assert.deepEqual(urls().slice(before), [], 'no refused case reached the upstream');
  process.stdout.write(`# ${table.join('\n# ')}\n`);
  assert.equal(await h.settled(), 0);
});

test('HTTP to Node: what is forwarded is the canonical request that was decided', async () => {
  const before = node.requests.length;
  // Normalised path and percent-encoding, Host set to the decided authority, HTTP/1.0 kept as 1.0.
  let r = await send(nodePort, `GET /a/./b/../hello?x=%7e%41 HTTP/1.0\r\nHost: LOCALHOST.\r\n\r\n`);
  assert.match(r.data, /^HTTP\/1\.1 200/);
  // Pipelining with a denial in between: the upstream sees exactly the permitted requests, in order.
  r = await send(
    nodePort,
    `GET /hello?1 HTTP/1.1\r\n${H}\r\nDELETE /x HTTP/1.1\r\n${H}\r\nGET /hello?2 HTTP/1.1\r\n${H}Connection: close\r\n\r\n`,
  );
  assert.deepEqual(
    [...r.data.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]),
    ['200', '403', '200'],
  );
  // Chunked body re-encoded, Expect: 100-continue passed on.
  r = await send(
    nodePort,
    `POST /api/echo HTTP/1.1\r\n${H}Expect: 100-continue\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n`,
  );
  assert.match(r.data, /abc/);
  const seen = node.requests.slice(before).map((q) => `${q.method} ${q.url} ${q.host} ${q.bodyBytes}`);
  assert.deepEqual(seen, [
    'GET /a/hello?x=~A localhost 0',
    'GET /hello?1 localhost 0',
    'GET /hello?2 localhost 0',
    'POST /api/echo localhost 3',
  ]);
});

test('tainted session: nothing leaves for a destination outside the trusted zone, whatever the method', async () => {
  h.dp.names.learn(CODER_ID, '127.0.0.1', 'outside.test');
  const clean = await send(nodePort, `GET /hello?q=public HTTP/1.1\r\nHost: outside.test\r\nConnection: close\r\n\r\n`);
  assert.match(clean.data, /^HTTP\/1\.1 200/, 'clean: an allowlisted GET is permitted');
  const before = urls().length;
  h.dp.taint.or(CODER_ID, 1n); // PII
  for (const m of ['GET', 'HEAD', 'OPTIONS']) {
    const from = (await h.events()).length;
    const r = await send(nodePort, `${m} /hello?q=secret HTTP/1.1\r\nHost: outside.test\r\nX-Data: secret\r\nConnection: close\r\n\r\n`);
    assert.match(r.data, /^HTTP\/1\.1 403/, m);
    const ev = (await eventsSince(from)).find((e) => e.action === `Action::"${m}"`)!;
    assert.ok(ev.policies.includes('sensitive-stays-trusted'), `${m}: ${JSON.stringify(ev.policies)}`);
  }
  assert.deepEqual(urls().slice(before), []);
});

test('Python http.server: HTTP/0.9 and a GET body are refused, never served', async (t) => {
  if (!py) return t.skip('python3 not available');
  const from = (await h.events()).length;
  // Python serves "GET /path" (HTTP/0.9) on its first line; the proxy waits for a full
  // HTTP/1 head (then 408s it), so the line never reaches the server.
  const r09 = await send(pyPort, 'GET /secret\r\n');
  assert.doesNotMatch(r09.data, /the secret file/);
  const body = await send(pyPort, `GET /hello HTTP/1.1\r\n${H}Content-Length: 30\r\n\r\nGET /secret HTTP/1.0\r\n\r\n`);
  assert.match(body.data, /^HTTP\/1\.1 400/);
  const ok = await send(pyPort, `GET /hello HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
  assert.match(ok.data, /hello from python/);
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(!py!.log.some((l) => l.includes('/secret')), py!.log.join('\n'));
  assert.ok((await eventsSince(from)).filter((e) => e.decision === 'deny').length >= 1);
});

function rpcPost(body: string | Buffer, extra = ''): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  return Buffer.concat([
    Buffer.from(
      `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json${extra}\r\nAccept: application/json, text/event-stream\r\nContent-Length: ${b.length}\r\nConnection: close\r\n\r\n`,
    ),
    b,
  ]);
}

test('MCP SDK server: charsets, BOM, duplicate keys, escapes, nesting and non-HTTP bytes', async () => {
  const calls = mcp.calls.length;
  const call = (name: string) => JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: { url: 'x' } } });
  const cases: Array<[string, Buffer | string, RegExp | 'reset']> = [
    ['charset=utf-7', rpcPost(call('http_post'), '; charset=utf-7'), /^HTTP\/1\.1 415/],
    ['BOM', rpcPost(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(call('read_file'))])), /^HTTP\/1\.1 400/],
    ['invalid UTF-8', rpcPost(Buffer.from([0x7b, 0xff, 0x7d])), /^HTTP\/1\.1 400/],
    ['deep nesting', rpcPost('['.repeat(200_000) + ']'.repeat(200_000)), /^HTTP\/1\.1 400/],
    ['text/plain body', rpcPost(call('read_file')).toString('latin1').replace('application/json', 'text/plain'), /^HTTP\/1\.1 415/],
    ['not HTTP at all', Buffer.from([0x00, 0x01, 0x02, 0x03, 0x04]), 'reset'],
    ['TLS to an MCP upstream', Buffer.from('1603010005' + '0100000100', 'hex'), 'reset'],
  ];
  for (const [name, bytes, reply] of cases) {
    const r = await send(mcpPort, [bytes]);
    if (reply === 'reset') assert.ok(r.reset || (r.closed && r.data === ''), `${name}: ${r.data.slice(0, 60)}`);
    else assert.match(r.data, reply, name);
  }
  assert.equal(mcp.calls.length, calls, 'nothing refused reached the server');
  const evs = await h.events();
  assert.ok(
    evs.some((e) => /declared 'mcp'/.test(e.reason ?? '')),
    'non-HTTP bytes refused by the declared kind',
  );
  assert.ok(evs.some((e) => /charset 'utf-7'/.test(e.reason ?? '')));
});

test('MCP: escapes and duplicate keys are decided and forwarded as one reading', async () => {
  // The tool name spelled with escapes, and a second "name" key: the proxy decides the parse it forwards.
  const init = await send(mcpPort, [
    rpcPost(
      JSON.stringify({
        jsonrpc: '2.0',
        id: 0,
        method: 'initialize',
        params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 't', version: '1' } },
      }),
    ),
  ]);
  const sid = /mcp-session-id: ([^\r\n]+)/i.exec(init.data)?.[1];
  assert.ok(sid, init.data.slice(0, 300));
  const from = (await h.events()).length;
  const body = `{"jsonrpc":"2.0","id":5,"method":"tools\\u002fcall","params":{"name":"http_post","name":"read\\u005ffile","arguments":{"path":"/data/x"}}}`;
  const r = await send(mcpPort, [rpcPost(body, `\r\nMcp-Session-Id: ${sid}\r\nMcp-Protocol-Version: 2025-03-26`)], 3000);
  assert.match(r.data, /contents of \/data\/x/);
  const ev = (await eventsSince(from)).find((e) => e.protocol === 'mcp' && e.action === 'Action::"read_file"');
  assert.ok(ev, 'decided as read_file');
  assert.equal(mcp.calls.at(-1)?.tool, 'read_file', 'the server ran what was decided');
});

/** An initialized streamable-HTTP session on the declared MCP server: the extra head lines a request in it carries. */
async function mcpSession(): Promise<string> {
  const init = await send(mcpPort, [
    rpcPost(
      JSON.stringify({
        jsonrpc: '2.0',
        id: 0,
        method: 'initialize',
        params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 't', version: '1' } },
      }),
    ),
  ]);
  const sid = /mcp-session-id: ([^\r\n]+)/i.exec(init.data)?.[1];
  assert.ok(sid, init.data.slice(0, 300));
  return `\r\nMcp-Session-Id: ${sid}\r\nMcp-Protocol-Version: 2025-03-26`;
}

test('MCP: ids beyond 2^53 reach the SDK server as sent, and a denial echoes them exactly', async () => {
  const session = await mcpSession();
  const big = '9007199254740993'; // 2^53 + 1: JSON.parse reads 9007199254740992
  // Clean body: forwarded as the exact bytes parsed. (The SDK's own schema then refuses an
  // id beyond 2^53 — its reading, relayed; what matters is that it read what was decided.)
  const clean = `{"jsonrpc":"2.0","id":${big},"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/workspace/a"}}}`;
  let from = (await h.events()).length;
  let r = await send(mcpPort, [rpcPost(clean, session)], 3000);
  assert.equal(mcp.bodies.at(-1), clean, 'the server got the bytes that were decided');
  assert.ok((await eventsSince(from)).some((e) => e.action === 'Action::"read_file"' && e.decision === 'allow'));
  // A duplicate key makes the proxy re-serialise: the id keeps its source digits, one "name" is left.
  const dup = `{"jsonrpc":"2.0","id":${big},"method":"tools/call","params":{"name":"run_command","name":"read_file","arguments":{"path":"/workspace/b"}}}`;
  from = (await h.events()).length;
  r = await send(mcpPort, [rpcPost(dup, session)], 3000);
  const forwarded = mcp.bodies.at(-1)!;
  assert.equal(
    forwarded,
    `{"jsonrpc":"2.0","id":${big},"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/workspace/b"}}}`,
  );
  assert.ok((await eventsSince(from)).some((e) => e.action === 'Action::"read_file"' && e.decision === 'allow'));
  // With a safe id the same re-serialised call runs what was decided.
  r = await send(mcpPort, [rpcPost(dup.replace(big, '7'), session)], 3000);
  assert.match(r.data, /contents of \/workspace\/b/);
  // Denied: the JSON-RPC error names the client's id exactly, so the client can correlate it.
  const calls = mcp.calls.length;
  const denied = `{"jsonrpc":"2.0","id":-${big}0,"method":"tools/call","params":{"name":"run_command","arguments":{"command":"curl x"}}}`;
  r = await send(mcpPort, [rpcPost(denied, session)], 3000);
  assert.match(r.data, new RegExp(`"id":-${big}0,"error":\\{"code":-32600`));
  assert.equal(mcp.calls.length, calls);
  // A re-serialisation that would change a number is refused, not rounded.
  r = await send(mcpPort, [rpcPost(`{"jsonrpc":"2.0","jsonrpc":"2.0","id":1,"method":"ping","params":{"x":1e400}}`, session)]);
  assert.match(r.data, /^HTTP\/1\.1 400[\s\S]*cannot re-emit exactly/);
});

test('MCP to an undeclared server is recognised by its JSON-RPC body, however Accept is spelled', async () => {
  routes.set(undeclaredMcpPort, other.port);
  const calls = other.calls.length;
  const from = (await h.events()).length;
  const body = JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    method: 'tools/call',
    params: { name: 'run_command', arguments: { command: 'id' } },
  });
  const r = await send(undeclaredMcpPort, [
    `POST /api/mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: Application/JSON\r\nAccept: TEXT/EVENT-STREAM;q=0.9 , application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
  ]);
  assert.match(r.data, /Denied by Lilith policy/);
  const ev = (await eventsSince(from)).find((e) => e.protocol === 'mcp')!;
  assert.equal(ev.resource, `MCPServer::"127.0.0.1:${other.port}"`);
  assert.equal(ev.decision, 'deny');
  assert.equal(other.calls.length, calls);
});

test("the enforcer's own listeners are never relayed; a stalled TLS hello is cut at the deadline", async () => {
  const from = (await h.events()).length;
  routes.set(undeclaredMcpPort, nodePort); // a connection "to" the proxy's own port
  const own = await send(undeclaredMcpPort, `GET / HTTP/1.1\r\n${H}\r\n`);
  assert.ok(own.reset || own.data === '', own.data);
  routes.set(undeclaredMcpPort, 7891); // lilith.json admin_listen port
  const admin = await send(undeclaredMcpPort, `GET /metrics HTTP/1.1\r\n${H}\r\n`);
  assert.ok(admin.reset || admin.data === '');
  routes.set(undeclaredMcpPort, node.port);
  const t0 = Date.now();
  const stalled = await send(undeclaredMcpPort, [Buffer.from('1603010200010001fe0303', 'hex')], 3000);
  assert.ok(stalled.reset || stalled.closed);
  assert.ok(Date.now() - t0 < 2000, 'cut at the detection deadline');
  const evs = await eventsSince(from);
  assert.equal(evs.filter((e) => /own listeners/.test(e.reason ?? '')).length, 2);
  assert.ok(evs.some((e) => e.protocol === 'tls' && /ClientHello not received within/.test(e.reason ?? '')));
  assert.equal(await h.settled(), 0);
});

test('declared tcp upstreams are decided at connect (server speaks first); per-agent connection cap', async () => {
  const banner = net.createServer((s) => s.end('220 banner\r\n'));
  await new Promise<void>((r) => banner.listen(0, '127.0.0.1', () => r()));
  const bannerPort = (banner.address() as net.AddressInfo).port;
  const echo = await startEchoServer();
  const t = await startHarness({
    destination: loopback(bannerPort),
    tweaks: {
      entities: [{ uid: { type: 'Endpoint', id: `127.0.0.1:${bannerPort}` }, attrs: {}, parents: [{ type: 'Zone', id: 'internal' }] }],
      config: (c) => {
        c.upstreams = { mail: { address: `127.0.0.1:${bannerPort}`, kind: 'tcp' } };
      },
    },
    extra: { budgets: { connections: 2 } },
  });
  try {
    const r = await rawExchange(t.proxy.port, [], 2000);
    assert.match(r.data, /^220 banner/);
    // Opaque TCP to a destination whose zone gets none: reset.
    t.origin.options.destination = loopback(echo.port);
    const denied = await rawExchange(t.proxy.port, ['opaque\x00bytes'], 2000);
    assert.ok(denied.reset || denied.data === '');
    // Two silent connections hold the agent's budget; a third is refused at once.
    const held = [net.connect(t.proxy.port, '127.0.0.1'), net.connect(t.proxy.port, '127.0.0.1')];
    for (const s of held) s.on('error', () => undefined);
    await new Promise((r) => setTimeout(r, 200));
    const third = await rawExchange(t.proxy.port, ['GET / HTTP/1.1\r\n\r\n'], 2000);
    assert.ok(third.reset || third.data === '');
    for (const s of held) s.destroy();
    const evs = await t.events();
    assert.ok(evs.some((e) => /open connections \(limit 2\)/.test(e.reason ?? '')));
    assert.ok(evs.some((e) => e.decision === 'allow' && e.policies.includes('tcp-internal')));
  } finally {
    await t.close();
    await echo.close();
    await new Promise<void>((r) => banner.close(() => r()));
  }
});
