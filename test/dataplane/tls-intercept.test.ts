// TLS interception through the proxy, with real clients and servers: the node
// CA's leaf is trusted by each client the way `lilith run` makes it trusted
// (CA bundle variables), every request inside TLS is decided like plaintext and
// audited, the upstream is verified (pinned CA in lilith.json) and a bad
// upstream certificate is a denial, pinning clients keep pass-through.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { startHarness, loopback, type Harness } from './helpers.js';
import { makeCert, rmCert, startH2Upstream, PRIVATE_KEY_TEXT, type TestCert, type Upstream } from './tls-upstreams.js';
import { InterceptionCa } from '../../enforcer/dataplane/tls/ca.js';
import { IdentityCa } from '../../enforcer/dataplane/tls/svid.js';
import { checkConfig } from '../../capsule/config-check.js';
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

/** HTTPS (h2 and HTTP/1.1) that requires a client certificate from `clientCa`: answers "<version> <url> <URI SAN>". */
async function startMtlsUpstream(c: TestCert, clientCa: string): Promise<{ port: number; seen: string[]; close(): Promise<void> }> {
  const seen: string[] = [];
  const server = http2.createSecureServer(
    { key: c.keyPem, cert: c.certPem, allowHTTP1: true, requestCert: true, rejectUnauthorized: true, ca: clientCa },
    (req, res) => {
      const s = (req.stream?.session?.socket ?? req.socket) as tls.TLSSocket;
      const san = s.getPeerCertificate().subjectaltname ?? '';
      seen.push(`${req.method} ${req.url} ${san}`);
      req.resume();
      req.on('end', () => res.end(`${req.httpVersion} ${req.url} ${san}`));
    },
  );
  const sockets = new Set<tls.TLSSocket>();
  server.on('secureConnection', (so: tls.TLSSocket) => {
    sockets.add(so);
    so.on('close', () => sockets.delete(so));
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    seen,
    close: async () => {
      for (const so of sockets) so.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

test('intercepted TLS to an upstream marked tls.client_certificate presents the agent SVID (the server requires it and reads the URI SAN), h1 and h2', async () => {
  const identity = await IdentityCa.open(join(caDir, 'ca'));
  const mtls = await startMtlsUpstream(cert, identity.certPem);
  const start = (withIdentity: boolean, clientCert = true) =>
    startHarness({
      destination: loopback(mtls.port),
      tweaks: {
        config: (c) => {
          c.upstreams.web = {
            address: `127.0.0.1:${mtls.port}`,
            kind: 'tls',
            ca: cert.certPem,
            ...(clientCert ? { tls: { client_certificate: true } } : {}),
          };
        },
      },
      extra: withIdentity ? { ca, identityCa: identity } : { ca },
    });
  const curl = (port: number, args: string[]) =>
    run('curl', ['-sS', '--max-time', '20', '--cacert', bundle, ...args.slice(0, -1), `https://localhost:${port}${args.at(-1)}`]).then(
      (r) => ({ ...r, code: 0 }),
      (e: { stdout: string; stderr: string; code: number }) => e,
    );
  const svid = 'URI:spiffe://corp.example/agents/coder';
  const m = await start(true);
  try {
    assert.equal((await curl(m.proxy.port, ['--http1.1', '/mtls?h1'])).stdout, `1.1 /mtls?h1 ${svid}`);
    assert.equal((await curl(m.proxy.port, ['--http2', '/mtls?h2'])).stdout, `2.0 /mtls?h2 ${svid}`);
    const denied = await curl(m.proxy.port, ['--http1.1', '-X', 'POST', '-d', 'x', '/upload']);
    assert.match(denied.stdout, /"error":"forbidden"/);
    assert.deepEqual(mtls.seen, [`GET /mtls?h1 ${svid}`, `GET /mtls?h2 ${svid}`], 'the denied POST never reached the upstream');
    const evs = (await m.events()).filter((e) => e.protocol === 'http');
    assert.deepEqual(evs.map(brief), [
      'Action::"GET" Host::"localhost" allow',
      'Action::"GET" Host::"localhost" allow',
      'Action::"POST" Host::"localhost" deny',
    ]);
  } finally {
    await m.close();
  }

  // Without tls.client_certificate the enforcer presents nothing, and the upstream refuses: nothing relayed.
  const plain = await start(true, false);
  try {
    const r = await curl(plain.proxy.port, ['--http1.1', '/mtls?none']);
    assert.doesNotMatch(r.stdout, /\/mtls\?none/);
    const r2 = await curl(plain.proxy.port, ['--http2', '/mtls?none2']);
    assert.doesNotMatch(r2.stdout, /\/mtls\?none2/);
    assert.equal(mtls.seen.length, 2);
    // Refused by the upstream after the TLS 1.3 handshake: audited as a denial of the interception, once per connection.
    // A reset when the refusal came during the agent's handshake, else a 502 (h1) or the stream refused (h2).
    assert.ok(r.code !== 0 || /bad gateway/.test(r.stdout), `h1: the agent saw a failure (${r.code} ${r.stdout})`);
    assert.ok(r2.code !== 0 || /bad gateway/.test(r2.stdout), `h2: the agent saw a failure (${r2.code} ${r2.stdout})`);
    const refused = (await plain.events()).filter((e) => /certificate required/.test(e.reason ?? ''));
    assert.deepEqual(
      refused.map((e) => `${brief(e)}: ${e.reason}`),
      Array(2).fill(
        'Action::"intercept" Host::"localhost" deny: upstream refused the TLS connection after the handshake: tlsv13 alert certificate required',
      ),
      JSON.stringify((await plain.events()).slice(-3)),
    );
  } finally {
    await plain.close();
  }

  // Asked for a client certificate by lilith.json but no identity CA: refused (audited), never made without one.
  const none = await start(false);
  try {
    const r = await curl(none.proxy.port, ['--http1.1', '/mtls?noca']);
    assert.notEqual(r.code ?? 0, 0);
    const last = (await none.events()).at(-1)!;
    assert.equal(brief(last), 'Action::"intercept" Host::"localhost" deny');
    assert.match(last.reason ?? '', /asks for a client certificate and this enforcer has no identity CA/);
    assert.equal(mtls.seen.length, 2);
  } finally {
    await none.close();
    await mtls.close();
  }
});

/**
 * A TCP front for `targetPort` that holds back what the server sends after the client's second
 * flight by `ms`: an upstream's TLS 1.3 refusal of the client certificate (an alert after the
 * client's handshake completed) then arrives once the relay owns the connection, as it does
 * from an upstream farther away than loopback.
 */
async function lateAlertFront(targetPort: number, ms: number): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((c) => {
    const t = net.connect({ port: targetPort, host: '127.0.0.1' });
    for (const so of [c, t]) {
      sockets.add(so);
      so.on('close', () => sockets.delete(so));
      so.on('error', () => undefined);
    }
    let serverSpoke = false;
    let clientAnswered = false;
    let held: Promise<void> | null = null;
    const later = (f: () => void) => {
      held = (held ?? new Promise<void>((r) => setTimeout(r, ms))).then(f);
    };
    c.on('data', (d) => {
      if (serverSpoke) clientAnswered = true;
      t.write(d);
    });
    t.on('data', (d) => {
      if (clientAnswered || held) later(() => void c.write(d));
      else {
        serverSpoke = true;
        c.write(d);
      }
    });
    t.on('close', () => later(() => c.end()));
    c.on('close', () => t.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      for (const so of sockets) so.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** HTTP/1.1 GET through the proxy with curl: its output, or its failure's exit code. */
const curlGet = (port: number, path: string, args: string[] = []) =>
  run('curl', ['-sS', '--max-time', '20', '--cacert', bundle, ...args, `https://localhost:${port}${path}`]).then(
    (r) => ({ stdout: r.stdout, code: 0 }),
    (e: { stdout: string; code: number }) => ({ stdout: e.stdout, code: e.code }),
  );

/** One GET on a node:http2 session to the proxy: the status, the stream's error and the session's GOAWAY code. */
async function h2Get(port: number, path: string): Promise<{ status?: number; error?: string; goaway?: number }> {
  const session = http2.connect(`https://localhost:${port}`, { ca: ca.certPem });
  const out: { status?: number; error?: string; goaway?: number } = {};
  session.on('error', () => undefined);
  session.on('goaway', (code) => (out.goaway = code));
  await new Promise<void>((resolve) => {
    const req = session.request({ ':path': path });
    req.on('response', (h) => (out.status = Number(h[':status'])));
    req.on('error', (e: NodeJS.ErrnoException) => (out.error = e.message));
    req.on('close', () => resolve());
    req.resume();
    req.end();
  });
  await new Promise<void>((r) => session.close(() => r()));
  return out;
}

test('an upstream refusing us after the TLS 1.3 handshake, once the relay owns the connection (alert certificate required): a deny audited with the alert, nothing reaches it, h1 gets a 502, h2 its stream refused and a GOAWAY', async () => {
  const identity = await IdentityCa.open(join(caDir, 'ca'));
  // Requires a client certificate; lilith.json does not ask for one, so none is presented: refused.
  const mtls = await startMtlsUpstream(cert, identity.certPem);
  const front = await lateAlertFront(mtls.port, 400);
  const m = await startHarness({
    destination: loopback(front.port),
    tweaks: {
      config: (c) => {
        c.upstreams.web = { address: `127.0.0.1:${front.port}`, kind: 'tls', ca: cert.certPem };
      },
    },
    extra: { ca, identityCa: identity },
  });
  const refusal =
    'Action::"intercept" Host::"localhost" deny: upstream refused the TLS connection after the handshake: tlsv13 alert certificate required';
  const refusals = async () =>
    (await m.events())
      .filter((e) => e.decision === 'deny' && /refused the TLS connection/.test(e.reason ?? ''))
      .map((e) => `${brief(e)}: ${e.reason}`);
  try {
    // HTTP/1.1: the request went into the refused connection; the agent gets a 502 naming the alert.
    const r = await curlGet(m.proxy.port, '/late?h1', ['--http1.1']);
    assert.match(r.stdout, /"error":"bad gateway"/);
    assert.match(r.stdout, /alert certificate required/);
    assert.deepEqual(await refusals(), [refusal]);

    // HTTP/2: the stream waiting for the upstream's SETTINGS is refused, the session told to go away.
    const got = await h2Get(m.proxy.port, '/late?h2');
    assert.equal(got.status, undefined, 'no response');
    assert.match(got.error ?? '', /NGHTTP2_REFUSED_STREAM/);
    assert.equal(got.goaway, http2.constants.NGHTTP2_NO_ERROR);
    assert.deepEqual(await refusals(), [refusal, refusal]);
    assert.deepEqual(mtls.seen, [], "nothing reached the upstream's request handler");
    assert.equal(await m.settled(), 0);
  } finally {
    await m.close();
    await front.close();
    await mtls.close();
  }
});

/**
 * openssl s_server requiring a client certificate from `clientCa`: a refused certificate is answered
 * with an alert (node:tls servers, rejecting one, close the connection without any).
 */
async function startOpensslMtls(c: TestCert, clientCa: string): Promise<{ port: number; close(): void }> {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const args = ['s_server', '-accept', `127.0.0.1:${port}`, '-cert', c.certPath, '-key', c.keyPath, '-CAfile', clientCa];
  const child = spawn('openssl', [...args, '-Verify', '1', '-verify_return_error', '-tls1_3', '-www', '-quiet'], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((r) => {
      const s = net.connect(port, '127.0.0.1', () => r(true)).on('error', () => r(false));
      s.on('connect', () => s.destroy());
    });
    if (up) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return { port, close: () => void child.kill() };
}

test('an upstream refusing the agent SVID (its client CA is not the identity CA) with alert unknown_ca after the handshake: a deny audited with the alert, the agent fails', async () => {
  const identity = await IdentityCa.open(join(caDir, 'ca'));
  const server = await startOpensslMtls(cert, cert.certPath);
  const front = await lateAlertFront(server.port, 400);
  const m = await startHarness({
    destination: loopback(front.port),
    tweaks: {
      config: (c) => {
        c.upstreams.web = { address: `127.0.0.1:${front.port}`, kind: 'tls', ca: cert.certPem, tls: { client_certificate: true } };
      },
    },
    extra: { ca, identityCa: identity },
  });
  try {
    const r = await curlGet(m.proxy.port, '/late?svid', ['--http1.1']);
    assert.match(r.stdout, /"error":"bad gateway"/);
    assert.match(r.stdout, /alert unknown ca/);
    const refused = (await m.events()).filter((e) => e.decision === 'deny' && /refused the TLS connection/.test(e.reason ?? ''));
    assert.deepEqual(
      refused.map((e) => `${brief(e)}: ${e.reason}`),
      ['Action::"intercept" Host::"localhost" deny: upstream refused the TLS connection after the handshake: tlsv1 alert unknown ca'],
    );
    assert.equal(await m.settled(), 0);
  } finally {
    await m.close();
    await front.close();
    server.close();
  }
});

test('lilith.json: on a kind "tls" upstream only tls.client_certificate applies (server_name and port are origination fields)', () => {
  const base = JSON.parse(readFileSync('policies/lilith.json', 'utf8')) as LilithConfig;
  const withUp = (u: Record<string, unknown>) => ({ ...base, upstreams: { x: { address: '10.0.0.9:443', kind: 'tls', ...u } } });
  assert.deepEqual(checkConfig(withUp({ tls: { client_certificate: true } })), []);
  assert.deepEqual(
    checkConfig(withUp({ tls: { client_certificate: true, port: 8443 } })).map((i) => i.path),
    ['/upstreams/x/tls/port'],
  );
  assert.match(checkConfig(withUp({ tls: { server_name: 'a.example' } }))[0].message, /tls.server_name is for TLS origination/);
});
