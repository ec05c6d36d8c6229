// TLS interception with the kernel doing the redirect (host cgroup mode): real
// clients in a managed agent cgroup dial the real upstream's address over TLS,
// trusting the node CA as `lilith run` makes them; the kernel sends them to the
// proxy, which intercepts, decides every request inside TLS and audits it with
// the agent's identity and pid from the kernel. curl, Node fetch (undici),
// Python's urllib and a @grpc/grpc-js client, each allowed and denied.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { attach, type Kernel } from '../../bpf/index.js';
import { makeCgroup, makePinRoot, probeBinary, repoRoot, type TestCgroup } from '../../testkit/kernel.js';
import { makeCert, rmCert, type TestCert } from '../../testkit/tls-upstream.js';
import { FileAuditSink } from '../../enforcer/daemon/audit-sink.js';
import { KernelOriginResolver } from '../../enforcer/dataplane/origin.js';
import { startDataplane, type Dataplane } from '../../enforcer/dataplane/dataplane.js';
import { InterceptionCa } from '../../enforcer/dataplane/tls/ca.js';
import { MutableSnapshots, snapshotFromDir, testPolicyDir } from './helpers.js';
import { startGrpcServer, startH2Upstream, type Upstream } from './tls-upstreams.js';
import type { DecisionAuditEvent } from '../../enforcer/audit/event.js';

const run = promisify(execFile);
const grpcAgent = join(fileURLToPath(new URL('.', import.meta.url)), 'kernel-grpc-agent.js');
const CODER = 'spiffe://corp.example/agents/coder';

let skip: string | false = false;
let kernel: Kernel | undefined;
let agent: TestCgroup | undefined;
let dp: Dataplane | undefined;
let audit: FileAuditSink | undefined;
let dir = '';
let auditPath = '';
let caDir = '';
let bundle = '';
let cert: TestCert | undefined;
let web: Upstream;
let grpcServer: Awaited<ReturnType<typeof startGrpcServer>>;
const cleanups: Array<() => unknown> = [];

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
  cert = makeCert('localhost');
  web = await startH2Upstream(cert);
  cleanups.push(() => web.close());
  grpcServer = await startGrpcServer(cert);
  cleanups.push(() => grpcServer.close());
  caDir = await mkdtemp(join(tmpdir(), 'lilith-ktls-'));
  const ca = await InterceptionCa.open(join(caDir, 'ca'));
  bundle = join(caDir, 'bundle.pem');
  await writeFile(bundle, ca.certPem);

  agent = makeCgroup();
  const cgPath = `/${basename(agent.dir)}`;
  dir = await testPolicyDir({
    config: (c) => {
      c.registrations = c.registrations
        .map((r) => (r.spiffe_id === CODER ? { ...r, selectors: [`cgroup:${cgPath}`] } : r))
        .filter((r) => !r.spiffe_id.endsWith('/coder/node'));
      // Both upstreams declared TLS with their self-signed certificate pinned.
      c.upstreams = {
        web: { address: `127.0.0.1:${web.port}`, kind: 'tls', ca: cert!.certPem },
        grpc: { address: `127.0.0.1:${grpcServer.port}`, kind: 'tls', ca: cert!.certPem },
      };
    },
  });
  auditPath = join(dir, 'audit.jsonl');
  audit = new FileAuditSink(auditPath);
  const kernelRef: { k?: Kernel } = {};
  dp = await startDataplane({
    snapshots: new MutableSnapshots(await snapshotFromDir(dir)),
    origin: new KernelOriginResolver({ originalDestination: (peer) => kernelRef.k?.originalDestination(peer) ?? null }),
    audit,
    listen: { proxy: ['127.0.0.1:0'], dns: '127.0.0.1:0' },
    ca,
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
  if (cert) rmCert(cert);
  if (dir) await rm(dir, { recursive: true, force: true });
  if (caDir) await rm(caDir, { recursive: true, force: true });
});

/** Runs a command as a managed process inside the agent cgroup, with the CA variables `lilith run` sets. */
function inAgent(cmd: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  const env = { ...process.env, NODE_EXTRA_CA_CERTS: bundle, SSL_CERT_FILE: bundle, CURL_CA_BUNDLE: bundle, REQUESTS_CA_BUNDLE: bundle };
  return run(probeBinary(false), ['cg', agent!.procs, 'exec', cmd, ...args], { timeout: 60_000, env }).catch(
    (e: { stdout: string; stderr: string }) => ({ stdout: e.stdout, stderr: e.stderr }),
  );
}

async function events(): Promise<DecisionAuditEvent[]> {
  await audit!.flush();
  return (await readFile(auditPath, 'utf8').catch(() => ''))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as DecisionAuditEvent);
}

/** The request decisions (inside TLS) since event `n`: action, decision, destination, identity. */
async function requestsSince(n: number): Promise<Array<[string, string, string, string]>> {
  return (await events())
    .slice(n)
    .filter((e) => e.protocol === 'http')
    .map((e) => [e.action, e.decision, e.destination ?? '', e.spiffe_id ?? '']);
}

async function pidsSince(n: number): Promise<unknown[]> {
  return (await events()).slice(n).map((e) => e.pid);
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
  const kinds = (await events()).slice(n).map((e) => `${e.action} ${e.decision}`);
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
  const grpcEvents = (await events()).slice(n).filter((e) => e.action === 'Action::"grpc"');
  assert.ok(
    grpcEvents.every((e) => e.pid === out.pid),
    'the grpc-js process, from the kernel',
  );
});
