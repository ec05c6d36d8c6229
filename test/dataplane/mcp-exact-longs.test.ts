// A Long-typed tool argument beyond 2^53, sent by the official MCP SDK client through
// the real proxy, reaches the decision exactly: a policy comparing
// context.arguments.n with 9007199254740993 allows that value and denies its
// rounded neighbour 9007199254740992 (JSON.parse reads both as 9007199254740992), and
// an integer outside the 64-bit range is denied with a reason naming the argument.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { loopback, snapshotFromDir, startHarness, type Harness } from './helpers.js';
import { startMcpServer, type TestMcpServer } from './mcp-server.js';

let server: TestMcpServer;
let h: Harness;

before(async () => {
  server = await startMcpServer('files', { transfer: { args: [], impl: () => 'transferred' } });
  h = await startHarness({
    tweaks: {
      config: (c) => {
        c.upstreams = { files: { address: `127.0.0.1:${server.port}`, kind: 'mcp' } };
      },
      policies: {
        'transfer.cedar':
          '@id("transfer-exact")\npermit (principal, action == Action::"transfer", resource)\n' +
          'when { context.arguments has n && context.arguments.n == 9007199254740993 };\n',
      },
    },
    destination: loopback(server.port),
  });
  // The schema declares the tool and its Long argument; the snapshot is rebuilt from it.
  const schemaPath = join(h.dir, 'schema.cedarschema');
  const schema = (await readFile(schemaPath, 'utf8'))
    .replace('type ToolArguments = {', 'type ToolArguments = {\n  n?: Long,')
    .concat('\naction "transfer" in ["tools/call"] appliesTo {\n  principal: Agent, resource: MCPServer, context: ToolContext };\n');
  await writeFile(schemaPath, schema);
  const old = h.snapshots.current;
  h.snapshots.current = await snapshotFromDir(h.dir);
  old?.authorizer.dispose();
});

after(async () => {
  await h.close();
  await server.close();
});

/**
 * The SDK client, whose JSON.stringify cannot write an integer beyond 2^53: an
 * argument "@@long:<digits>" goes on the wire as the bare digits, as a client in a
 * language with 64-bit integers sends it. Everything else is the SDK's own bytes.
 */
async function connect(): Promise<Client> {
  const client = new Client({ name: 'test-agent', version: '1.0.0' });
  const fetchExact: typeof fetch = (url, init) =>
    fetch(url, typeof init?.body === 'string' ? { ...init, body: init.body.replace(/"@@long:(-?[0-9]+)"/g, '$1') } : init);
  await client.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${h.proxy.port}/mcp`), { fetch: fetchExact }));
  return client;
}

const lastTransfer = async () => (await h.events()).filter((e) => e.action === 'Action::"transfer"').at(-1)!;

test('context.arguments.n == 9007199254740993: that value is allowed (forwarded with its digits), its rounded neighbour denied', async () => {
  const client = await connect();
  const r = (await client.callTool({ name: 'transfer', arguments: { n: '@@long:9007199254740993' } })) as { content: { text: string }[] };
  assert.equal(r.content[0].text, 'transferred');
  let ev = await lastTransfer();
  assert.deepEqual([ev.decision, ev.policies], ['allow', ['transfer-exact']]);
  assert.match(server.bodies.at(-1)!, /"arguments":\{"n":9007199254740993\}/, 'the server got the digits that were decided');

  const calls = server.calls.length;
  await assert.rejects(
    client.callTool({ name: 'transfer', arguments: { n: '@@long:9007199254740992' } }),
    (err: unknown) => err instanceof McpError && err.code === -32600,
  );
  ev = await lastTransfer();
  assert.equal(ev.decision, 'deny');
  assert.equal(server.calls.length, calls, 'the denied call never reached the server');
  await client.close();
});

test('an argument outside the 64-bit Long range is denied with a reason naming it', async () => {
  const client = await connect();
  const calls = server.calls.length;
  for (const n of ['9223372036854775808', '-9223372036854775809']) {
    const from = (await h.events()).length;
    await assert.rejects(
      client.callTool({ name: 'transfer', arguments: { n: `@@long:${n}` } }),
      (err: unknown) => err instanceof McpError && err.code === -32600,
    );
    // The request could not be built: decided (denied) under the fallback action, with the reason.
    const evs = (await h.events()).slice(from).filter((e) => e.protocol === 'mcp' && e.action !== 'Action::"mcp_session"');
    assert.equal(evs.length, 1, JSON.stringify(evs));
    const ev = evs[0];
    assert.equal(ev.decision, 'deny');
    assert.equal(ev.action, 'Action::"call_tool"');
    assert.equal(ev.reason, 'request could not be built: tool argument `n` is an integer outside the 64-bit Long range');
  }
  assert.equal(server.calls.length, calls);
  await client.close();
});
