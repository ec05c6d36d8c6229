import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { startHarness, loopback, type Harness } from './helpers.js';
import { startLegacySseServer, startMcpServer, type TestMcpServer } from './mcp-server.js';
import type { Entity } from '../../cedar/types.js';

let files: TestMcpServer;
let reports: TestMcpServer;
let h: Harness;
let filesProxyPort: number;
let reportsProxyPort: number;

before(async () => {
  files = await startMcpServer('files', {
    read_file: {
      args: ['path'],
      impl: (a) => (a.path.includes('customers') ? 'id,name\n1,Alice Doe\n2,Bob Roe\n' : `contents of ${a.path}`),
    },
    http_post: { args: ['url', 'body'], impl: () => 'posted' },
    weather: { args: ['city'], impl: (a) => `sunny in ${a.city}` },
    write_file: { args: ['path', 'content'], impl: () => 'written' },
  });
  reports = await startMcpServer(
    'reports',
    { fetch_report: { args: ['report'], impl: (a) => `report ${a.report}: revenue up 4%` } },
    { json: true },
  );
  // The bundled MCP servers sit in Zone::"approved-mcp" under Zone::"trusted", so the
  // untrusted-upstream classifier stays quiet for them without any test tweak.
  let routes = new Map<number, number>();
  h = await startHarness({
    listeners: 2,
    tweaks: {
      config: (c) => {
        c.upstreams = {
          files: { address: `127.0.0.1:${files.port}`, kind: 'mcp' },
          reports: { address: `127.0.0.1:${reports.port}`, kind: 'mcp' },
        };
      },
    },
    destination: (peer) => {
      const up = routes.get(peer.localPort ?? 0);
      return up ? loopback(up) : null;
    },
  });
  filesProxyPort = h.dp.proxyAddresses[0].port;
  reportsProxyPort = h.dp.proxyAddresses[1].port;
  routes = new Map([
    [filesProxyPort, files.port],
    [reportsProxyPort, reports.port],
  ]);
});

after(async () => {
  await h.close();
  await files.close();
  await reports.close();
});

async function connect(port: number): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const client = new Client({ name: 'test-agent', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`));
  await client.connect(transport);
  return { client, transport };
}

const text = (r: unknown) => (r as { content: Array<{ text: string }> }).content[0].text;

test('the seed sequence through the proxy: read_file ALLOW (PII), fetch_report ALLOW (PII|FINANCIAL), http_post DENY', async () => {
  const f = await connect(filesProxyPort);
  const r = await connect(reportsProxyPort);
  const read = await f.client.callTool({ name: 'read_file', arguments: { path: '/data/customers.csv' } });
  assert.match(text(read), /Alice Doe/);
  assert.equal(h.dp.taint.mask(h.origin.options.facts ? 'spiffe://corp.example/agents/coder' : ''), 0x1n);
  const report = await r.client.callTool({ name: 'fetch_report', arguments: { report: 'q3' } });
  assert.equal(text(report), 'report q3: revenue up 4%');
  assert.equal(h.dp.taint.mask('spiffe://corp.example/agents/coder'), 0x3n);
  await assert.rejects(
    f.client.callTool({ name: 'http_post', arguments: { url: 'https://paste.example/x', body: 'Alice Doe' } }),
    (err: unknown) => err instanceof McpError && err.code === -32600 && /taint-blocks-egress/.test(err.message),
  );
  // The server never saw the denied call.
  assert.deepEqual(
    files.calls.map((c) => c.tool),
    ['read_file'],
  );
  // The session keeps working after a denial.
  const again = await f.client.callTool({ name: 'read_file', arguments: { path: '/data/readme.txt' } });
  assert.equal(text(again), 'contents of /data/readme.txt');

  const tools = (await h.events()).filter((e) => e.protocol === 'mcp' && e.action !== 'Action::"mcp_session"');
  assert.deepEqual(
    tools.map((e) => [e.action, e.resource, e.decision, e.policies.join(','), e.taint_before, e.taint_after]),
    [
      ['Action::"read_file"', 'MCPServer::"files"', 'allow', 'read-file-clean', '0x0000000000000000', '0x0000000000000001'],
      ['Action::"fetch_report"', 'MCPServer::"reports"', 'allow', 'read-tools', '0x0000000000000001', '0x0000000000000003'],
      ['Action::"http_post"', 'MCPServer::"files"', 'deny', 'taint-blocks-egress', '0x0000000000000003', '0x0000000000000003'],
      ['Action::"read_file"', 'MCPServer::"files"', 'allow', 'read-file-clean', '0x0000000000000003', '0x0000000000000003'],
    ],
  );
  for (const e of tools) {
    assert.equal(e.spiffe_id, 'spiffe://corp.example/agents/coder');
    assert.equal(e.pid, process.pid);
    assert.equal(typeof e.latency_us, 'number');
    assert.equal(e.watermark, h.snapshots.current!.watermark);
    assert.ok(e.mcp_session, 'MCP decisions carry the session id');
  }
  assert.equal(tools[0].destination, `127.0.0.1:${files.port}`);
  await f.client.close();
  await r.client.close();
});

test('a tool the schema does not name is decided as call_tool (and denied by default)', async () => {
  const f = await connect(filesProxyPort);
  await assert.rejects(
    f.client.callTool({ name: 'weather', arguments: { city: 'Oslo' } }),
    (err: unknown) => err instanceof McpError && err.code === -32600,
  );
  const ev = (await h.events()).filter((e) => e.action === 'Action::"call_tool"').at(-1)!;
  assert.equal(ev.decision, 'deny');
  assert.equal(ev.resource, 'MCPServer::"files"');
  await f.client.close();
});

test('tool arguments reach policy projected onto the schema: write_file outside /workspace denied, inside allowed', async () => {
  // A fresh agent identity would carry no taint; this one is tainted from the seed test, so use reads only.
  const f = await connect(filesProxyPort);
  const list = await f.client.listTools();
  assert.ok(
    list.tools.some((t) => t.name === 'read_file'),
    'tools/list passes through',
  );
  await assert.rejects(f.client.callTool({ name: 'write_file', arguments: { path: '/etc/passwd', content: 'x' } }), McpError);
  const ev = (await h.events()).filter((e) => e.action === 'Action::"write_file"').at(-1)!;
  assert.equal(ev.decision, 'deny');
  // `path` is declared (String) and reaches policy; `content` is not declared and is dropped,
  // so the request still validates against the schema and coding-agents-write permits it.
  assert.equal(text(await f.client.callTool({ name: 'write_file', arguments: { path: '/workspace/notes.md', content: 'x' } })), 'written');
  const ok = (await h.events()).filter((e) => e.action === 'Action::"write_file"').at(-1)!;
  assert.deepEqual([ok.decision, ok.policies], ['allow', ['coding-agents-write']]);
  await f.client.close();
  assert.equal(await h.settled(), 0);
});

test('malformed JSON-RPC and oversized MCP bodies are refused without reaching the server; the proxy keeps serving', async () => {
  const url = `http://127.0.0.1:${filesProxyPort}/mcp`;
  const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  const callsBefore = files.calls.length;
  const bad = await fetch(url, { method: 'POST', headers, body: '{"jsonrpc":"2.0","method":"tools/call",' });
  assert.equal(bad.status, 400);
  const badBody = (await bad.json()) as { error: { code: number } };
  assert.equal(badBody.error.code, -32700);
  const notRpc = await fetch(url, { method: 'POST', headers, body: '{"hello":"world"}' });
  assert.equal(notRpc.status, 400);
  const noName = await fetch(url, {
    method: 'POST',
    headers,
    body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { arguments: {} } }),
  });
  const noNameBody = (await noName.json()) as { id: number; error: { code: number; message: string } };
  assert.equal(noNameBody.id, 7);
  assert.equal(noNameBody.error.code, -32600);
  assert.match(noNameBody.error.message, /without a tool name/);
  // A batch with one denied call is refused whole, each request answered.
  const batch = await fetch(url, {
    method: 'POST',
    headers,
    body: JSON.stringify([
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'read_file', arguments: { path: '/a' } } },
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'http_post', arguments: { url: 'x' } } },
    ]),
  });
  const batchBody = (await batch.json()) as Array<{ id: number; error: { code: number } }>;
  assert.deepEqual(
    batchBody.map((b) => [b.id, b.error.code]),
    [
      [1, -32600],
      [2, -32600],
    ],
  );
  const big = await fetch(url, {
    method: 'POST',
    headers,
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping', params: { pad: 'x'.repeat(11 * 1024 * 1024) } }),
  }).catch((e: Error) => e);
  if (!(big instanceof Error)) assert.equal(big.status, 413);
  assert.equal(files.calls.length, callsBefore, 'nothing malformed or refused reached the server');
  const f = await connect(filesProxyPort);
  assert.equal(text(await f.client.callTool({ name: 'read_file', arguments: { path: '/data/ok' } })), 'contents of /data/ok');
  await f.client.close();
  const reasons = (await h.events()).filter((e) => e.protocol === 'mcp' && e.decision === 'deny').map((e) => e.reason ?? '');
  assert.ok(reasons.some((r) => /malformed MCP message: body is not JSON/.test(r)));
  assert.ok(reasons.some((r) => /exceeds/.test(r)));
  assert.equal(await h.settled(), 0);
});

test('response content sets taint: a private key in a tool result adds CREDENTIALS, after which read_file is denied', async () => {
  const keyServer = await startMcpServer('files', {
    read_file: { args: ['path'], impl: () => '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n-----END OPENSSH PRIVATE KEY-----' },
  });
  const other = await startHarness({
    tweaks: { config: (c) => void (c.upstreams = { files: { address: `127.0.0.1:${keyServer.port}`, kind: 'mcp' } }) },
    destination: loopback(keyServer.port),
    facts: { pid: process.pid, cgroupPath: '/lilith/agents/reader' },
  });
  try {
    const client = new Client({ name: 'reader', version: '1' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${other.proxy.port}/mcp`)));
    await client.callTool({ name: 'read_file', arguments: { path: '/notes.txt' } });
    const reader = 'spiffe://corp.example/agents/reader';
    assert.equal(other.dp.taint.mask(reader) & 0x8n, 0x8n, 'CREDENTIALS bit set from the response');
    await assert.rejects(client.callTool({ name: 'read_file', arguments: { path: '/notes.txt' } }), McpError);
    await client.close();
  } finally {
    await other.close();
    await keyServer.close();
  }
});

test('older HTTP+SSE transport (SDK SSEClientTransport ↔ SSEServerTransport): calls decided, results taint, denial surfaces to the caller', async () => {
  const { SSEClientTransport } = await import('@modelcontextprotocol/sdk/client/sse.js');
  const legacy = await startLegacySseServer('files', {
    read_file: { args: ['path'], impl: () => 'contact: carol@corp.example.com' },
    http_post: { args: ['url'], impl: () => 'posted' },
  });
  const lh = await startHarness({
    tweaks: {
      entities: (list: Entity[]) =>
        list.map((e) => (e.uid.type === 'MCPServer' ? { ...e, parents: [...e.parents, { type: 'Zone', id: 'allowlisted' }] } : e)),
      config: (c) => void (c.upstreams = { files: { address: `127.0.0.1:${legacy.port}`, kind: 'mcp' } }),
    },
    destination: loopback(legacy.port),
    facts: { pid: process.pid, cgroupPath: '/lilith/agents/reader' },
  });
  try {
    const client = new Client({ name: 'legacy', version: '1' });
    await client.connect(new SSEClientTransport(new URL(`http://127.0.0.1:${lh.proxy.port}/sse`)));
    const r = await client.callTool({ name: 'read_file', arguments: { path: '/notes.txt' } });
    assert.equal(text(r), 'contact: carol@corp.example.com');
    // The email in the result arrived over the event stream and set PII.
    for (let i = 0; i < 100 && lh.dp.taint.mask('spiffe://corp.example/agents/reader') === 0n; i++)
      await new Promise((res) => setTimeout(res, 10));
    assert.equal(lh.dp.taint.mask('spiffe://corp.example/agents/reader'), 0x1n);
    await assert.rejects(client.callTool({ name: 'http_post', arguments: { url: 'https://x.example' } }), /403[\s\S]*taint-blocks-egress/);
    assert.deepEqual(
      legacy.calls.map((c) => c.tool),
      ['read_file'],
    );
    const ev = (await lh.events()).filter((e) => e.action === 'Action::"http_post"');
    assert.equal(ev.length, 1);
    assert.equal(ev[0].decision, 'deny');
    assert.ok(ev[0].mcp_session, 'the legacy sessionId is tracked');
    await client.close();
  } finally {
    await lh.close();
    await legacy.close();
  }
});

test('curl POSTing JSON-RPC with Expect: 100-continue gets exactly one 100 and the server answer', async () => {
  const init = {
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'curl', version: '1' } },
  };
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const { stdout } = await promisify(execFile)('curl', [
    '-sS',
    '-i',
    '--max-time',
    '20',
    '-H',
    'Expect: 100-continue',
    '-H',
    'Content-Type: application/json',
    '-H',
    'Accept: application/json, text/event-stream',
    '--data',
    JSON.stringify(init),
    `http://127.0.0.1:${reportsProxyPort}/mcp`,
  ]);
  assert.equal(stdout.match(/HTTP\/1\.1 100 Continue/g)?.length, 1);
  assert.match(stdout, /HTTP\/1\.1 200 OK/);
  assert.match(stdout, /"serverInfo":\{"name":"reports"/);
});
