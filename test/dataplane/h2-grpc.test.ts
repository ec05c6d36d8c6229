// gRPC and HTTP/2 inside intercepted TLS, with @grpc/grpc-js on both ends: each
// call decided as Action::"grpc" on its service and method (a denied call gets
// PERMISSION_DENIED while the channel keeps serving), HTTP/2 CONNECT refused,
// the MCP SDK client over streamable HTTPS, and git over HTTPS.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startHarness, loopback, type Harness } from './helpers.js';
import {
  GRPC_SERVICES,
  makeCert,
  rmCert,
  startGitHttps,
  startGrpcServer,
  startH2Upstream,
  startTlsFront,
  type TestCert,
} from './tls-upstreams.js';
import { startMcpServer } from './mcp-server.js';
import { InterceptionCa } from '../../enforcer/dataplane/tls/ca.js';
import type { DecisionAuditEvent } from '../../enforcer/audit/event.js';

const run = promisify(execFile);
let cert: TestCert;
let ca: InterceptionCa;
let caDir: string;

const brief = (e: DecisionAuditEvent) => `${e.action} ${e.resource} ${e.decision}`;

before(async () => {
  cert = makeCert('localhost');
  caDir = await mkdtemp(join(tmpdir(), 'lilith-ca-'));
  ca = await InterceptionCa.open(join(caDir, 'ca'));
  await writeFile(join(caDir, 'bundle.pem'), ca.certPem);
});
after(async () => {
  rmCert(cert);
  await rm(caDir, { recursive: true, force: true });
});

async function harnessFor(port: number, kind: 'tls' | 'mcp' = 'tls'): Promise<Harness> {
  return startHarness({
    destination: loopback(port),
    tweaks: {
      config: (c) => {
        c.upstreams.up = { address: `127.0.0.1:${port}`, kind, ca: cert.certPem };
      },
    },
    extra: { ca },
  });
}

test('gRPC: lilith.test.Echo/Say allowed (grpc-internal), lilith.test.Admin/Wipe gets PERMISSION_DENIED on the same channel', async () => {
  const server = await startGrpcServer(cert);
  const h = await harnessFor(server.port);
  const creds = grpc.credentials.createSsl(Buffer.from(ca.certPem));
  const Echo = grpc.makeGenericClientConstructor(GRPC_SERVICES.echo, 'Echo');
  const Admin = grpc.makeGenericClientConstructor(GRPC_SERVICES.admin, 'Admin');
  const target = `localhost:${h.proxy.port}`;
  const echo = new Echo(target, creds);
  const admin = new Admin(target, creds, { channelOverride: echo.getChannel() });
  const call = (c: grpc.Client, method: string, arg: string) =>
    new Promise<{ ok: string } | { code: number; details: string }>((resolve) =>
      (c as unknown as Record<string, (a: Buffer, cb: (e: grpc.ServiceError | null, r?: Buffer) => void) => void>)[method](
        Buffer.from(arg),
        (err, res) => resolve(err ? { code: err.code, details: err.details } : { ok: res!.toString() }),
      ),
    );
  try {
    assert.deepEqual(await call(echo, 'Say', 'one'), { ok: 'echo: one' });
    const denied = await call(admin, 'Wipe', '');
    assert.equal((denied as { code: number }).code, grpc.status.PERMISSION_DENIED);
    assert.match((denied as { details: string }).details, /grpc-no-admin/);
    assert.deepEqual(await call(echo, 'Say', 'two'), { ok: 'echo: two' }, 'the channel keeps serving after a denied call');
    assert.deepEqual(server.calls, ['Say one', 'Say two'], 'the denied call never reached the server');
    const evs = (await h.events()).filter((e) => e.protocol === 'http');
    assert.deepEqual(evs.map(brief), [
      'Action::"grpc" Host::"localhost" allow',
      'Action::"grpc" Host::"localhost" deny',
      'Action::"grpc" Host::"localhost" allow',
    ]);
    assert.deepEqual(evs[1].policies, ['grpc-no-admin']);
  } finally {
    echo.close();
    admin.close();
    await h.close();
    await server.close();
  }
});

test('HTTP/2 CONNECT through an intercepted session is refused (no tunnels) and audited', async () => {
  const server = await startGrpcServer(cert);
  const h = await harnessFor(server.port);
  try {
    const session = http2.connect(`https://localhost:${h.proxy.port}`, { ca: ca.certPem });
    const code = await new Promise<number>((resolve) => {
      const req = session.request({ ':method': 'CONNECT', ':authority': 'evil.example:443' });
      req.on('close', () => resolve(req.rstCode ?? -1));
      req.on('error', () => undefined);
    });
    session.destroy();
    assert.equal(code, http2.constants.NGHTTP2_PROTOCOL_ERROR);
    const last = (await h.events()).at(-1)!;
    assert.equal(last.decision, 'deny');
    assert.match(last.reason ?? '', /CONNECT is not relayed/);
  } finally {
    await h.close();
    await server.close();
  }
});

test('the MCP SDK client over streamable HTTPS: tool calls decided per tool inside TLS', async () => {
  const mcp = await startMcpServer('files', {
    read_file: { args: ['path'], impl: (a) => `contents of ${a.path}` },
    http_post: { args: ['url'], impl: () => 'posted' },
  });
  const front = await startTlsFront(cert, mcp.port);
  const h = await startHarness({
    destination: loopback(front.port),
    tweaks: {
      config: (c) => {
        c.upstreams.files = { address: `127.0.0.1:${front.port}`, kind: 'mcp', ca: cert.certPem };
      },
    },
    extra: { ca },
  });
  const prev = process.env.NODE_EXTRA_CA_CERTS;
  try {
    // The SDK uses fetch (undici), which takes the CA from the process's TLS defaults.
    const script = `
      import { Client } from '@modelcontextprotocol/sdk/client/index.js';
      import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
      const c = new Client({ name: 't', version: '1' });
      await c.connect(new StreamableHTTPClientTransport(new URL('https://localhost:${h.proxy.port}/mcp')));
      const a = await c.callTool({ name: 'read_file', arguments: { path: '/workspace/readme' } });
      const b = await c.callTool({ name: 'read_file', arguments: { path: '/home/u/.ssh/id_rsa' } });
      const d = await c.callTool({ name: 'http_post', arguments: { url: 'https://x' } }).catch(e => ({ err: String(e.message) }));
      process.stdout.write(JSON.stringify([a.content[0].text, b.content?.[0]?.text, d]));
      await c.close();`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, NODE_EXTRA_CA_CERTS: join(caDir, 'bundle.pem') },
      cwd: process.cwd(),
    });
    const [a, b, d] = JSON.parse(stdout) as [string, string, { err?: string }];
    assert.equal(a, 'contents of /workspace/readme');
    assert.equal(b, 'contents of /home/u/.ssh/id_rsa');
    // After reading ~/.ssh the session holds CREDENTIALS: http_post is denied by taint.
    assert.match(d.err ?? '', /Denied by Lilith policy/);
    const evs = (await h.events()).filter((e) => e.protocol === 'mcp' && e.action !== 'Action::"mcp_session"');
    assert.deepEqual(evs.map(brief), [
      'Action::"read_file" MCPServer::"files" allow',
      'Action::"read_file" MCPServer::"files" allow',
      'Action::"http_post" MCPServer::"files" deny',
    ]);
    assert.deepEqual(
      mcp.calls.map((c) => c.tool),
      ['read_file', 'read_file'],
    );
  } finally {
    if (prev === undefined) delete process.env.NODE_EXTRA_CA_CERTS;
    await h.close();
    await front.close();
    await mcp.close();
  }
  void Client;
  void StreamableHTTPClientTransport;
});

test('git over HTTPS (git http-backend): clone under /api/ allowed; a clone elsewhere is refused at git-upload-pack', async () => {
  const root = await mkdtemp(join(tmpdir(), 'lilith-git-'));
  const env = { ...process.env, GIT_SSL_CAINFO: join(caDir, 'bundle.pem'), GIT_TERMINAL_PROMPT: '0', HOME: root };
  await run('git', ['init', '-q', '--bare', '-b', 'main', join(root, 'api', 'repo.git')]);
  await run('git', ['init', '-q', '--bare', '-b', 'main', join(root, 'other', 'repo.git')]);
  const src = join(root, 'src');
  await run('git', ['init', '-q', '-b', 'main', src]);
  await writeFile(join(src, 'README'), 'hello through lilith\n');
  const g = (args: string[], cwd = src) => run('git', ['-c', 'user.email=t@e', '-c', 'user.name=t', ...args], { cwd, env });
  await g(['add', 'README']);
  await g(['commit', '-q', '-m', 'first']);
  await g(['push', '-q', join(root, 'api', 'repo.git'), 'main']);
  await g(['push', '-q', join(root, 'other', 'repo.git'), 'main']);
  const server = await startGitHttps(cert, root);
  const h = await harnessFor(server.port);
  try {
    await g(['clone', '-q', `https://localhost:${h.proxy.port}/api/repo.git`, join(root, 'clone1')], root);
    const { stdout } = await run('git', ['-C', join(root, 'clone1'), 'show', 'HEAD:README'], { env });
    assert.equal(stdout, 'hello through lilith\n');
    await assert.rejects(g(['clone', '-q', `https://localhost:${h.proxy.port}/other/repo.git`, join(root, 'clone2')], root));
    const evs = (await h.events()).filter((e) => e.protocol === 'http');
    assert.ok(evs.some((e) => brief(e) === 'Action::"POST" Host::"localhost" allow' && e.policies.includes('http-write-internal')));
    assert.equal(brief(evs.at(-1)!), 'Action::"POST" Host::"localhost" deny', 'git-upload-pack outside /api/ denied');
  } finally {
    await h.close();
    await server.close();
    await rm(root, { recursive: true, force: true });
  }
});

test('HTTP/2 abuse: rapid reset ends the session with GOAWAY (audited); an oversized header list is refused; the proxy keeps serving', async () => {
  const up = await startH2Upstream(cert);
  const h = await harnessFor(up.port);
  try {
    const session = http2.connect(`https://localhost:${h.proxy.port}`, { ca: ca.certPem });
    session.on('error', () => undefined);
    const goaway = new Promise<number>((resolve) => session.on('goaway', (code) => resolve(code)));
    await new Promise<void>((r) => session.once('connect', () => r()));
    for (let i = 0; i < 150 && !session.destroyed && !session.closed; i++) {
      const req = session.request({ ':path': `/r${i}` });
      req.on('error', () => undefined);
      req.close(http2.constants.NGHTTP2_CANCEL);
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(await goaway, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    session.destroy();
    const evs = await h.events();
    assert.ok(
      evs.some((e) => /rapid reset/.test(e.reason ?? '')),
      'audited',
    );

    // A header list over max_header_bytes (32 KiB): refused before any decision or upstream request.
    const s2 = http2.connect(`https://localhost:${h.proxy.port}`, { ca: ca.certPem });
    s2.on('error', () => undefined);
    const code = await new Promise<number | string>((resolve) => {
      const req = s2.request({ ':path': '/big-headers', 'x-big': 'a'.repeat(40_000) });
      req.on('response', (hd) => resolve(Number(hd[':status'])));
      req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      req.on('close', () => resolve(req.rstCode ?? 'closed'));
    });
    s2.destroy();
    assert.notEqual(code, 200);
    assert.ok(!up.requests.some((r) => r.url === '/big-headers'));

    // The proxy still serves a well-behaved client.
    const s3 = http2.connect(`https://localhost:${h.proxy.port}`, { ca: ca.certPem });
    const body = await new Promise<string>((resolve, reject) => {
      const req = s3.request({ ':path': '/after' });
      let out = '';
      req.on('data', (d) => (out += d));
      req.on('end', () => resolve(out));
      req.on('error', reject);
    });
    s3.close();
    assert.equal(body, '2.0 GET /after');
  } finally {
    await h.close();
    await up.close();
  }
});
