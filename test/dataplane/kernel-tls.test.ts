// TLS interception with the kernel doing the redirect (host cgroup mode): real
// clients in a managed agent cgroup (kernel-harness.ts) dial the real upstream's
// address over TLS, trusting the node CA as `lilith run` makes them; the kernel
// sends them to the proxy, which intercepts, decides every request inside TLS
// and audits it with the agent's identity and pid from the kernel. curl, Node
// fetch (undici), Python's urllib, git over HTTPS, the MCP SDK client over
// streamable HTTPS and a @grpc/grpc-js client and server, each allowed and denied.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { makeCert, rmCert, type TestCert } from '../../testkit/tls-upstream.js';
import { InterceptionCa } from '../../enforcer/dataplane/tls/ca.js';
import { CODER_ID as CODER, kernelSkipReason, ManagedAgent } from './kernel-harness.js';
import { startGitHttps, startGrpcServer, startH2Upstream, startTlsFront, type Upstream } from './tls-upstreams.js';
import { startMcpServer, type TestMcpServer } from './mcp-server.js';

const run = promisify(execFile);
const here = fileURLToPath(new URL('.', import.meta.url));
const grpcAgent = join(here, 'kernel-grpc-agent.js');
const mcpAgent = join(here, 'kernel-mcp-agent.js');

let skip: string | false = false;
let managed: ManagedAgent | undefined;
let caDir = '';
let bundle = '';
let gitRoot = '';
let cert: TestCert | undefined;
let web: Upstream;
let grpcServer: Awaited<ReturnType<typeof startGrpcServer>>;
let git: Awaited<ReturnType<typeof startGitHttps>>;
let mcp: TestMcpServer;
let mcpFront: Awaited<ReturnType<typeof startTlsFront>>;
const cleanups: Array<() => unknown> = [];

/** Two bare repositories, /api/repo.git and /other/repo.git, with one commit each, served over HTTPS. */
async function gitRepos(root: string): Promise<void> {
  const env = { ...process.env, HOME: root, GIT_CONFIG_NOSYSTEM: '1' };
  const src = join(root, 'src');
  const g = (args: string[], cwd = src) => run('git', ['-c', 'user.email=t@e', '-c', 'user.name=t', ...args], { cwd, env });
  await g(['init', '-q', '--bare', '-b', 'main', join(root, 'api', 'repo.git')], root);
  await g(['init', '-q', '--bare', '-b', 'main', join(root, 'other', 'repo.git')], root);
  await g(['init', '-q', '-b', 'main', src], root);
  await writeFile(join(src, 'README'), 'hello through lilith\n');
  await g(['add', 'README']);
  await g(['commit', '-q', '-m', 'first']);
  await g(['push', '-q', join(root, 'api', 'repo.git'), 'main']);
  await g(['push', '-q', join(root, 'other', 'repo.git'), 'main']);
}

before(async () => {
  skip = kernelSkipReason();
  if (skip) return;
  cert = makeCert('localhost');
  web = await startH2Upstream(cert);
  cleanups.push(() => web.close());
  grpcServer = await startGrpcServer(cert);
  cleanups.push(() => grpcServer.close());
  gitRoot = await mkdtemp(join(tmpdir(), 'lilith-kgit-'));
  await gitRepos(gitRoot);
  git = await startGitHttps(cert, gitRoot);
  cleanups.push(() => git.close());
  mcp = await startMcpServer('files', {
    read_file: { args: ['path'], impl: (a) => `contents of ${a.path}` },
    run_command: { args: ['command'], impl: () => 'ran' },
  });
  cleanups.push(() => mcp.close());
  mcpFront = await startTlsFront(cert, mcp.port);
  cleanups.push(() => mcpFront.close());
  caDir = await mkdtemp(join(tmpdir(), 'lilith-ktls-'));
  const ca = await InterceptionCa.open(join(caDir, 'ca'));
  bundle = join(caDir, 'bundle.pem');
  await writeFile(bundle, ca.certPem);
  const pinned = cert.certPem;
  managed = await ManagedAgent.start({
    // Every upstream declared TLS with its self-signed certificate pinned; the MCP one is kind mcp over TLS.
    config: (c) => {
      c.upstreams = {
        web: { address: `127.0.0.1:${web.port}`, kind: 'tls', ca: pinned },
        grpc: { address: `127.0.0.1:${grpcServer.port}`, kind: 'tls', ca: pinned },
        git: { address: `127.0.0.1:${git.port}`, kind: 'tls', ca: pinned },
        files: { address: `127.0.0.1:${mcpFront.port}`, kind: 'mcp', ca: pinned },
      };
    },
    dataplane: { ca },
    // The CA variables `lilith run` sets; HOME keeps git away from any user configuration.
    env: {
      NODE_EXTRA_CA_CERTS: bundle,
      SSL_CERT_FILE: bundle,
      CURL_CA_BUNDLE: bundle,
      REQUESTS_CA_BUNDLE: bundle,
      GIT_SSL_CAINFO: bundle,
      GIT_TERMINAL_PROMPT: '0',
      GIT_CONFIG_NOSYSTEM: '1',
      HOME: caDir,
    },
  });
});

after(async () => {
  await managed?.close();
  for (const c of cleanups.reverse()) await c();
  if (cert) rmCert(cert);
  if (caDir) await rm(caDir, { recursive: true, force: true });
  if (gitRoot) await rm(gitRoot, { recursive: true, force: true });
});

const inAgent = (cmd: string, args: string[]) => managed!.exec(cmd, args);
const events = (since = 0) => managed!.events(since);

/** The request decisions (inside TLS) since event `n`: action, decision, destination, identity. */
async function requestsSince(n: number, protocol = 'http'): Promise<Array<[string, string, string, string]>> {
  return (await events(n))
    .filter((e) => e.protocol === protocol)
    .map((e) => [e.action, e.decision, e.destination ?? '', e.spiffe_id ?? '']);
}

async function pidsSince(n: number): Promise<unknown[]> {
  return (await events(n)).map((e) => e.pid);
}

test('kernel redirect + interception: curl to the real HTTPS address, GET allowed and POST denied inside TLS, audited', async (t) => {
  if (skip) return t.skip(skip);
  const n = (await events()).length;
  const ok = await inAgent('/usr/bin/curl', ['-sS', '--http1.1', '--max-time', '20', `https://localhost:${web.port}/k?curl`]);
  assert.equal(ok.stdout, '1.1 GET /k?curl');
  const no = await inAgent('/usr/bin/curl', [
    '-sS',
    '--http1.1',
    '--max-time',
    '20',
    '-X',
    'POST',
    '-d',
    'x',
    `https://localhost:${web.port}/upload`,
  ]);
  assert.match(no.stdout, /"error":"forbidden"/);
  const h2 = await inAgent('/usr/bin/curl', ['-sS', '--http2', '--max-time', '20', `https://localhost:${web.port}/k?h2`]);
  assert.equal(h2.stdout, '2.0 GET /k?h2');
  const dest = `127.0.0.1:${web.port}`;
  assert.deepEqual(await requestsSince(n), [
    ['Action::"GET"', 'allow', dest, CODER],
    ['Action::"POST"', 'deny', dest, CODER],
    ['Action::"GET"', 'allow', dest, CODER],
  ]);
  const kinds = (await events(n)).map((e) => `${e.action} ${e.decision}`);
  assert.ok(kinds.includes('Action::"intercept" allow'), kinds.join(', '));
  assert.ok(
    (await pidsSince(n)).every((p) => typeof p === 'number' && p !== process.pid),
    'pids of the managed curl, from the kernel',
  );
  assert.ok(!web.requests.some((r) => r.url === '/upload'), 'the denied POST never reached the upstream');
});

test('kernel redirect + interception: Node fetch (undici) over h2-capable TLS, GET allowed and DELETE denied', async (t) => {
  if (skip) return t.skip(skip);
  const n = (await events()).length;
  const u = `https://localhost:${web.port}`;
  const script = `const a=await fetch('${u}/k?fetch').then(r=>r.text());const b=await fetch('${u}/thing',{method:'DELETE'}).then(r=>r.status);console.log(a+'|'+b)`;
  const r = await inAgent(process.execPath, ['--input-type=module', '-e', script]);
  assert.equal(r.stdout.trim(), '1.1 GET /k?fetch|403');
  const dest = `127.0.0.1:${web.port}`;
  assert.deepEqual(await requestsSince(n), [
    ['Action::"GET"', 'allow', dest, CODER],
    ['Action::"DELETE"', 'deny', dest, CODER],
  ]);
});

test("kernel redirect + interception: Python's urllib, GET allowed and PUT denied", async (t) => {
  if (skip) return t.skip(skip);
  const n = (await events()).length;
  const py = `import urllib.request as u, urllib.error as e
print(u.urlopen('https://localhost:${web.port}/k?py', timeout=20).read().decode(), end='|')
try:
    u.urlopen(u.Request('https://localhost:${web.port}/thing', data=b'x', method='PUT'), timeout=20)
except e.HTTPError as x:
    print(x.code)`;
  const r = await inAgent('/usr/bin/python3', ['-c', py]);
  assert.equal(r.stdout.trim(), '1.1 GET /k?py|403');
  const dest = `127.0.0.1:${web.port}`;
  assert.deepEqual(await requestsSince(n), [
    ['Action::"GET"', 'allow', dest, CODER],
    ['Action::"PUT"', 'deny', dest, CODER],
  ]);
});

test('kernel redirect + interception: @grpc/grpc-js client and server, Echo/Say allowed, Admin/Wipe PERMISSION_DENIED', async (t) => {
  if (skip) return t.skip(skip);
  const n = (await events()).length;
  const r = await inAgent(process.execPath, [grpcAgent, `localhost:${grpcServer.port}`, bundle]);
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { pid: number; say: string; wipe: string };
  assert.equal(out.say, 'echo: hi');
  assert.equal(out.wipe, 'error 7');
  assert.deepEqual(grpcServer.calls.slice(-1), ['Say hi'], 'the denied call never reached the server');
  const dest = `127.0.0.1:${grpcServer.port}`;
  assert.deepEqual(await requestsSince(n), [
    ['Action::"grpc"', 'allow', dest, CODER],
    ['Action::"grpc"', 'deny', dest, CODER],
  ]);
  const grpcEvents = (await events(n)).filter((e) => e.action === 'Action::"grpc"');
  assert.ok(
    grpcEvents.every((e) => e.pid === out.pid),
    'the grpc-js process, from the kernel',
  );
});

test('kernel redirect + interception: git over HTTPS, ls-remote and clone under /api/ allowed; clone elsewhere refused at git-upload-pack', async (t) => {
  if (skip) return t.skip(skip);
  const u = `https://localhost:${git.port}`;
  const n = (await events()).length;
  const refs = await inAgent('/usr/bin/git', ['ls-remote', `${u}/api/repo.git`]);
  assert.equal(refs.code, 0, refs.stderr);
  assert.match(refs.stdout, /^[0-9a-f]{40}\tHEAD$/m);
  const clone = join(gitRoot, 'clone-api');
  const ok = await inAgent('/usr/bin/git', ['clone', '-q', `${u}/api/repo.git`, clone]);
  assert.equal(ok.code, 0, ok.stderr);
  const { stdout } = await run('git', ['-C', clone, 'show', 'HEAD:README']);
  assert.equal(stdout, 'hello through lilith\n');
  const dest = `127.0.0.1:${git.port}`;
  const allowed = await requestsSince(n);
  assert.ok(allowed.length >= 3, `ls-remote + clone requests: ${JSON.stringify(allowed)}`);
  assert.ok(
    allowed.every(([, d, de, id]) => d === 'allow' && de === dest && id === CODER),
    JSON.stringify(allowed),
  );
  assert.ok(
    allowed.some(([a]) => a === 'Action::"POST"'),
    'git-upload-pack POSTs decided inside TLS',
  );

  const m = (await events()).length;
  const no = await inAgent('/usr/bin/git', ['clone', '-q', `${u}/other/repo.git`, join(gitRoot, 'clone-other')]);
  assert.notEqual(no.code, 0);
  assert.match(no.stderr, /403/);
  assert.deepEqual((await requestsSince(m)).at(-1), ['Action::"POST"', 'deny', dest, CODER], 'git-upload-pack outside /api/');
  assert.ok(
    (await pidsSince(m)).every((p) => typeof p === 'number' && p !== process.pid),
    'pids of the managed git, from the kernel',
  );
});

test('kernel redirect + interception: the MCP SDK client over streamable HTTPS, read_file allowed and run_command denied per tool', async (t) => {
  if (skip) return t.skip(skip);
  const n = (await events()).length;
  const calls = mcp.calls.length;
  const r = await inAgent(process.execPath, [mcpAgent, `https://localhost:${mcpFront.port}/mcp`]);
  const line = r.stdout.trim().split('\n').at(-1);
  assert.ok(line, r.stderr);
  const out = JSON.parse(line) as { pid: number; read: string; run: { message?: string } | string };
  assert.equal(out.read, 'contents of /workspace/readme');
  assert.match(typeof out.run === 'string' ? out.run : (out.run.message ?? ''), /Denied by Lilith policy/);
  assert.deepEqual(
    mcp.calls.slice(calls).map((c) => c.tool),
    ['read_file'],
    'the denied call never reached the server',
  );
  const dest = `127.0.0.1:${mcpFront.port}`;
  const tools = (await events(n)).filter((e) => e.protocol === 'mcp' && e.action !== 'Action::"mcp_session"');
  assert.deepEqual(
    tools.map((e) => [e.action, e.resource, e.decision, e.destination, e.spiffe_id]),
    [
      ['Action::"read_file"', 'MCPServer::"files"', 'allow', dest, CODER],
      ['Action::"run_command"', 'MCPServer::"files"', 'deny', dest, CODER],
    ],
  );
  assert.ok(
    tools.every((e) => e.pid === out.pid),
    'the SDK client process, from the kernel',
  );
});
