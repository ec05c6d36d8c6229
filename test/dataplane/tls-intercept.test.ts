// TLS interception through the proxy, with real clients and servers: the node
// CA's leaf is trusted by each client the way `lilith run` makes it trusted
// (CA bundle variables), every request inside TLS is decided like plaintext and
// audited, the upstream is verified (pinned CA in lilith.json) and a bad
// upstream certificate is a denial, pinning clients keep pass-through.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import tls from 'node:tls';
import { startHarness, loopback, type Harness } from './helpers.js';
import { makeCert, rmCert, startH2Upstream, PRIVATE_KEY_TEXT, type TestCert, type Upstream } from './tls-upstreams.js';
import { InterceptionCa } from '../../enforcer/dataplane/tls/ca.js';
import type { LilithConfig } from '../../capsule/config.js';
import type { DecisionAuditEvent } from '../../enforcer/audit/event.js';

const run = promisify(execFile);
let cert: TestCert;
let up: Upstream;
let ca: InterceptionCa;
let caDir: string;
let bundle: string;
let h: Harness;

/** lilith.json: the test upstream declared kind tls, its self-signed CA pinned. */
const pin = (port: number, c: TestCert) => (cfg: LilithConfig) => {
  cfg.upstreams.web = { address: `127.0.0.1:${port}`, kind: 'tls', ca: c.certPem };
};

/** Events after `n` (the ones this request produced). */
async function since(harness: Harness, n: number): Promise<DecisionAuditEvent[]> {
  return (await harness.events()).slice(n);
}

const brief = (e: DecisionAuditEvent) => `${e.action} ${e.resource} ${e.decision}`;

before(async () => {
  cert = makeCert('localhost');
  up = await startH2Upstream(cert);
  caDir = await mkdtemp(join(tmpdir(), 'lilith-ca-'));
  ca = await InterceptionCa.open(join(caDir, 'ca'));
  bundle = join(caDir, 'bundle.pem');
  await writeFile(bundle, ca.certPem);
  h = await startHarness({ destination: loopback(up.port), tweaks: { config: pin(up.port, cert) }, extra: { ca } });
});
after(async () => {
  await h.close();
  await up.close();
  rmCert(cert);
  await rm(caDir, { recursive: true, force: true });
});

test('curl over intercepted HTTPS: GET decided as Action::"GET" inside TLS and relayed; POST outside /api/* gets 403', async () => {
  const n = (await h.events()).length;
  const ok = await run('curl', [
    '-sS',
    '--http1.1',
    '--max-time',
    '20',
    '--cacert',
    bundle,
    `https://localhost:${h.proxy.port}/hello?curl`,
  ]);
  assert.equal(ok.stdout, '1.1 GET /hello?curl');
  const evs = await since(h, n);
  assert.deepEqual(evs.map(brief), [
    'Action::"connect" Host::"localhost" allow',
    'Action::"intercept" Host::"localhost" allow',
    'Action::"GET" Host::"localhost" allow',
  ]);
  assert.deepEqual(evs[1].policies, ['tls-intercept-allowlisted']);
  assert.deepEqual(evs[2].policies, ['http-read-allowlisted']);
  assert.equal(up.requests.at(-1)!.authority, `localhost:${h.proxy.port}`);

  const m = (await h.events()).length;
  const denied = await run('curl', [
    '-sS',
    '--http1.1',
    '--max-time',
    '20',
    '--cacert',
    bundle,
    '-X',
    'POST',
    '-d',
    'x=1',
    `https://localhost:${h.proxy.port}/upload`,
  ]);
  assert.match(denied.stdout, /"error":"forbidden"/);
  const d = (await since(h, m)).at(-1)!;
  assert.equal(brief(d), 'Action::"POST" Host::"localhost" deny');
  assert.equal(d.protocol, 'http');
  assert.equal(await h.settled(), 0);
});

test('curl over HTTP/2 (ALPN h2): each stream decided; a denied stream is reset while the session serves others', async () => {
  const n = (await h.events()).length;
  const ok = await run('curl', ['-sS', '--http2', '--max-time', '20', '--cacert', bundle, `https://localhost:${h.proxy.port}/h2?a`]);
  assert.equal(ok.stdout, '2.0 GET /h2?a');
  assert.equal(up.requests.at(-1)!.version, '2.0');
  // One connection, two streams: the POST is reset, the GET after it still answered.
  const both = await run('curl', [
    '-sS',
    '--http2',
    '--max-time',
    '20',
    '--cacert',
    bundle,
    '-o',
    '/dev/null',
    '-w',
    '%{http_code}\n',
    '-X',
    'POST',
    '-d',
    'x',
    `https://localhost:${h.proxy.port}/nope`,
    '--next',
    '--http2',
    '--cacert',
    bundle,
    '-w',
    ' %{http_code}\n',
    `https://localhost:${h.proxy.port}/h2?b`,
  ]).catch((e: { stdout: string; code: number }) => e);
  assert.match(both.stdout, /2\.0 GET \/h2\?b 200/);
  const evs = (await since(h, n)).filter((e) => e.protocol === 'http');
  assert.deepEqual(evs.map(brief), [
    'Action::"GET" Host::"localhost" allow',
    'Action::"POST" Host::"localhost" deny',
    'Action::"GET" Host::"localhost" allow',
  ]);
  assert.ok(!up.requests.some((r) => r.url === '/nope'), 'the denied stream never reached the upstream');
});

test('Node fetch (undici) trusts the node CA through NODE_EXTRA_CA_CERTS: GET allowed, DELETE denied', async () => {
  const script = `const u='https://localhost:${h.proxy.port}';
    const a = await fetch(u+'/hello?fetch').then(r => r.text());
    const b = await fetch(u+'/thing', {method:'DELETE'}).then(r => r.status + ' ' + r.headers.get('content-type'));
    process.stdout.write(a + '|' + b);`;
  const n = (await h.events()).length;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, NODE_EXTRA_CA_CERTS: bundle },
  });
  assert.equal(stdout, '1.1 GET /hello?fetch|403 application/json');
  const evs = (await since(h, n)).filter((e) => e.protocol === 'http');
  assert.deepEqual(evs.map(brief), ['Action::"GET" Host::"localhost" allow', 'Action::"DELETE" Host::"localhost" deny']);
});

test("Python's urllib trusts the node CA through SSL_CERT_FILE: GET allowed, PUT denied", async () => {
  const py = `import urllib.request, sys
u = 'https://localhost:${h.proxy.port}'
print(urllib.request.urlopen(u + '/hello?py').read().decode(), end='|')
try:
    urllib.request.urlopen(urllib.request.Request(u + '/x', data=b'1', method='PUT'))
except urllib.error.HTTPError as e:
    print(e.code, end='')`;
  const n = (await h.events()).length;
  const { stdout } = await run('python3', ['-c', py], { env: { ...process.env, SSL_CERT_FILE: bundle } });
  assert.equal(stdout, '1.1 GET /hello?py|403');
  const evs = (await since(h, n)).filter((e) => e.protocol === 'http');
  assert.deepEqual(evs.map(brief), ['Action::"GET" Host::"localhost" allow', 'Action::"PUT" Host::"localhost" deny']);
});

test('response detectors run inside TLS: a private key in an HTTPS response taints the agent', async () => {
  const h2 = await startHarness({ destination: loopback(up.port), tweaks: { config: pin(up.port, cert) }, extra: { ca } });
  try {
    const { stdout } = await run('curl', [
      '-sS',
      '--http1.1',
      '--max-time',
      '20',
      '--cacert',
      bundle,
      `https://localhost:${h2.proxy.port}/secret`,
    ]);
    assert.equal(stdout, PRIVATE_KEY_TEXT);
    assert.notEqual(h2.dp.taint.mask('spiffe://corp.example/agents/coder'), 0n, 'CREDENTIALS set from the decrypted body');
  } finally {
    await h2.close();
  }
});

test('an upstream whose certificate does not verify is denied (audited), never relayed unverified', async () => {
  // Not pinned: the self-signed upstream certificate is checked against the system store and fails.
  const bad = await startHarness({ destination: loopback(up.port), extra: { ca } });
  try {
    const n = up.requests.length;
    await assert.rejects(run('curl', ['-sS', '--max-time', '20', '--cacert', bundle, `https://localhost:${bad.proxy.port}/hello`]));
    const d = (await bad.events()).at(-1)!;
    assert.equal(brief(d), 'Action::"intercept" Host::"localhost" deny');
    assert.match(d.reason ?? '', /upstream certificate failed verification \((DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN)\)/);
    assert.equal(up.requests.length, n, 'nothing reached the upstream');
    assert.equal(await bad.settled(), 0);
  } finally {
    await bad.close();
  }
});

test('a pinning client is kept on pass-through (Zone::"tls-passthrough"); intercepted, its pin refuses the node CA and that is audited', async () => {
  const pinning = (port: number) =>
    new Promise<string>((resolve, reject) => {
      // Trusts only the upstream's own certificate: what a pinning client does.
      const s = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: cert.certPem, ALPNProtocols: ['http/1.1'] }, () => {
        s.write('GET /pinned HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
      });
      let out = '';
      s.on('data', (d) => (out += d));
      s.on('end', () => resolve(out));
      s.on('error', reject);
    });
  const pass = await startHarness({
    destination: loopback(up.port),
    tweaks: {
      config: pin(up.port, cert),
      entities: (list) =>
        list.map((e) =>
          e.uid.type === 'Host' && e.uid.id === 'localhost'
            ? { ...e, parents: [...e.parents, { type: 'Zone', id: 'tls-passthrough' }] }
            : e,
        ),
    },
    extra: { ca },
  });
  try {
    const out = await pinning(pass.proxy.port);
    assert.match(out, /^HTTP\/1\.1 200/);
    assert.match(out, /1\.1 GET \/pinned/);
    const evs = (await pass.events()).map(brief);
    assert.deepEqual(evs, ['Action::"connect" Host::"localhost" allow', 'Action::"intercept" Host::"localhost" deny']);
  } finally {
    await pass.close();
  }
  // Intercepted: the pin sees the node CA's leaf and aborts (curl trusting only the upstream's own
  // certificate alerts during the handshake); the enforcer audits why.
  const n = (await h.events()).length;
  await assert.rejects(
    run('curl', ['-sS', '--max-time', '20', '--cacert', cert.certPath, `https://localhost:${h.proxy.port}/pinned`]),
    (e: { code?: number }) => e.code === 60 || e.code === 35,
  );
  await new Promise((r) => setTimeout(r, 100));
  const last = (await since(h, n)).at(-1)!;
  assert.equal(brief(last), 'Action::"intercept" Host::"localhost" deny');
  assert.match(last.reason ?? '', /client TLS handshake failed.*tls-passthrough/);
  assert.ok(!up.requests.some((r) => r.url === '/pinned' && r.version === '2.0'));
});
