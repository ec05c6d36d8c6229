// TLS origination with real clients and servers: an upstream lilith.json marks
// `tls` gets the agent's plaintext HTTP, decided, over TLS 1.3 with the upstream
// verified (pinned CA, or the system store), optionally showing the agent's
// X.509-SVID to a server that requires a client certificate; a certificate that
// does not verify, or an upstream below TLS 1.3, is a denial, never a downgrade.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type tls from 'node:tls';
import { promisify } from 'node:util';
import { startHarness, loopback, listen, type Harness } from './helpers.js';
import { issueLeaf, makeCa, makeCert, rmCert, type TestCert } from '../../testkit/tls-upstream.js';
import { IdentityCa, SVID_CA_KEY_FILE } from '../../enforcer/dataplane/tls/svid.js';
import { resetTrustCache } from '../../enforcer/dataplane/tls/upstream.js';
import { checkConfig } from '../../capsule/config-check.js';
import type { LilithConfig, Upstream } from '../../capsule/config.js';
import type { DecisionAuditEvent } from '../../enforcer/audit/event.js';
import { readFileSync, statSync } from 'node:fs';

const run = promisify(execFile);
const cleanups: Array<() => unknown> = [];
let caDir: string;
let identity: IdentityCa;

interface Seen {
  method: string;
  url: string;
  peer: string;
  version: string;
}

/** HTTPS (HTTP/1.1) upstream; with `clientCa` it requires a client certificate from that CA and answers with its URI SAN. */
async function startUpstream(
  cert: TestCert,
  opts: { clientCa?: string; maxVersion?: tls.SecureVersion } = {},
): Promise<{ port: number; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = https.createServer(
    {
      key: cert.keyPem,
      cert: cert.certPem,
      requestCert: !!opts.clientCa,
      rejectUnauthorized: !!opts.clientCa,
      ca: opts.clientCa,
      maxVersion: opts.maxVersion,
    },
    (req, res) => {
      const s = req.socket as tls.TLSSocket;
      const peer = opts.clientCa ? (s.getPeerCertificate().subjectaltname ?? '') : '';
      seen.push({ method: req.method ?? '', url: req.url ?? '', peer, version: s.getProtocol() ?? '' });
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`${s.getProtocol()} ${req.method} ${req.url} ${peer}`);
      });
    },
  );
  const port = await listen(server);
  cleanups.push(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { port, seen };
}

async function harness(port: number, up: Partial<Upstream>): Promise<Harness> {
  const h = await startHarness({
    destination: loopback(port),
    tweaks: {
      config: (cfg: LilithConfig) => {
        cfg.upstreams.api = { address: `127.0.0.1:${port}`, kind: 'http', tls: { server_name: 'localhost' }, ...up };
      },
    },
    extra: { identityCa: identity },
  });
  cleanups.push(() => h.close());
  return h;
}

const curl = (port: number, path: string, extra: string[] = []) =>
  run('curl', ['-sS', '--max-time', '20', ...extra, `http://localhost:${port}${path}`]).catch((e: { stdout: string; stderr: string }) => e);
const brief = (e: DecisionAuditEvent) => `${e.action} ${e.resource} ${e.decision}`;

before(async () => {
  caDir = await mkdtemp(join(tmpdir(), 'lilith-idca-'));
  identity = await IdentityCa.open(join(caDir, 'ca'));
});
after(async () => {
  for (const c of cleanups.reverse()) await c();
  await rm(caDir, { recursive: true, force: true });
});

test('the identity CA key is 0600 in a 0700 directory; SVIDs carry the SPIFFE ID as their one URI SAN, cached per identity', async () => {
  assert.equal(statSync(join(caDir, 'ca', SVID_CA_KEY_FILE)).mode & 0o777, 0o600);
  assert.equal(statSync(join(caDir, 'ca')).mode & 0o777, 0o700);
  const a = await identity.issue('spiffe://corp.example/agents/coder');
  assert.equal(await identity.issue('spiffe://corp.example/agents/coder'), a, 'cached');
  const { X509Certificate } = await import('node:crypto');
  const leaf = new X509Certificate(a.chainPem);
  assert.equal(leaf.subjectAltName, 'URI:spiffe://corp.example/agents/coder');
  assert.ok(leaf.checkIssued(new X509Certificate(identity.certPem)) && leaf.verify(new X509Certificate(identity.certPem).publicKey));
  assert.equal(leaf.ca, false);
  assert.match(leaf.keyUsage?.join(',') ?? '', /1\.3\.6\.1\.5\.5\.7\.3\.2/, 'clientAuth');
  assert.ok(new Date(leaf.validTo).getTime() - Date.now() <= 3600_000 + 60_000, 'short-lived');
  await assert.rejects(identity.issue('https://not-spiffe'), { code: 'CA_BAD_NAME' });
});

test('curl speaks plaintext; the decided request reaches the upstream over TLS 1.3 with the agent SVID (server requires and checks it)', async () => {
  const cert = makeCert('localhost');
  cleanups.push(() => rmCert(cert));
  const up = await startUpstream(cert, { clientCa: identity.certPem });
  const h = await harness(up.port, { ca: cert.certPem, tls: { server_name: 'localhost', client_certificate: true } });
  const ok = await curl(h.proxy.port, '/hello?o');
  assert.equal(ok.stdout, 'TLSv1.3 GET /hello?o URI:spiffe://corp.example/agents/coder');
  const denied = await curl(h.proxy.port, '/upload', ['-X', 'POST', '-d', 'x=1']);
  assert.match(denied.stdout, /"error":"forbidden"/);
  assert.deepEqual(
    up.seen.map((s) => `${s.method} ${s.url}`),
    ['GET /hello?o'],
    'the denied POST never reached the upstream',
  );
  const evs = (await h.events()).filter((e) => e.protocol === 'http');
  assert.deepEqual(evs.map(brief), ['Action::"GET" Host::"localhost" allow', 'Action::"POST" Host::"localhost" deny']);
  assert.equal(evs[0].spiffe_id, 'spiffe://corp.example/agents/coder');
});

test('without client_certificate the same upstream refuses the handshake: audited denial, 502, nothing relayed', async () => {
  const cert = makeCert('localhost');
  cleanups.push(() => rmCert(cert));
  const up = await startUpstream(cert, { clientCa: identity.certPem });
  const h = await harness(up.port, { ca: cert.certPem });
  const r = await curl(h.proxy.port, '/hello');
  assert.match(r.stdout, /"error":"bad gateway"/);
  const d = (await h.events()).at(-1)!;
  assert.equal(brief(d), 'Action::"connect" Host::"localhost" deny');
  assert.match(d.reason ?? '', /originated TLS to localhost failed: alert certificate required/);
  assert.equal(up.seen.length, 0);
});

test('no pin: verified against the system store (a private CA added there through NODE_EXTRA_CA_CERTS)', async (t) => {
  const privateCa = makeCa('Test private CA');
  const leaf = issueLeaf(privateCa, 'localhost');
  cleanups.push(
    () => rmCert(privateCa),
    () => rmCert(leaf),
  );
  const up = await startUpstream(leaf);
  const before = process.env.NODE_EXTRA_CA_CERTS;
  process.env.NODE_EXTRA_CA_CERTS = privateCa.certPath;
  resetTrustCache();
  t.after(() => {
    if (before === undefined) delete process.env.NODE_EXTRA_CA_CERTS;
    else process.env.NODE_EXTRA_CA_CERTS = before;
    resetTrustCache();
  });
  // No server_name either: the certificate must carry the address's IP.
  const h = await harness(up.port, { tls: {} });
  const ok = await curl(h.proxy.port, '/sys');
  assert.equal(ok.stdout, 'TLSv1.3 GET /sys ');
});

test('an upstream whose certificate does not verify is denied (audited), never relayed unverified or in plaintext', async () => {
  const cert = makeCert('localhost');
  const other = makeCert('localhost');
  cleanups.push(
    () => rmCert(cert),
    () => rmCert(other),
  );
  const up = await startUpstream(cert);
  for (const pin of [undefined, other.certPem]) {
    const h = await harness(up.port, pin ? { ca: pin } : {});
    const r = await curl(h.proxy.port, '/hello');
    assert.match(r.stdout, /"error":"bad gateway"/);
    const d = (await h.events()).at(-1)!;
    assert.equal(brief(d), 'Action::"connect" Host::"localhost" deny');
    assert.match(d.reason ?? '', /upstream certificate failed verification \((DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN)\)/);
    assert.equal(await h.settled(), 0);
  }
  // A name the certificate does not carry fails the same way.
  const h = await harness(up.port, { ca: cert.certPem, tls: { server_name: 'api.other.example' } });
  await curl(h.proxy.port, '/hello');
  assert.match((await h.events()).at(-1)!.reason ?? '', /failed verification \(ERR_TLS_CERT_ALTNAME_INVALID\)/);
  assert.equal(up.seen.length, 0, 'nothing reached the upstream');
});

test('an upstream that offers only TLS 1.2 is refused: origination is TLS 1.3, no downgrade', async () => {
  const cert = makeCert('localhost');
  cleanups.push(() => rmCert(cert));
  const up = await startUpstream(cert, { maxVersion: 'TLSv1.2' });
  const h = await harness(up.port, { ca: cert.certPem });
  const r = await curl(h.proxy.port, '/hello');
  assert.match(r.stdout, /"error":"bad gateway"/);
  assert.match((await h.events()).at(-1)!.reason ?? '', /originated TLS to localhost failed: alert protocol version/);
  assert.equal(up.seen.length, 0);
});

test('lilith.json: upstream tls fields are checked with errors naming what is wrong', () => {
  const base = JSON.parse(readFileSync('policies/lilith.json', 'utf8')) as LilithConfig;
  const withUp = (u: Record<string, unknown>) => ({ ...base, upstreams: { x: { address: '10.0.0.9:443', ...u } } });
  assert.deepEqual(checkConfig(withUp({ kind: 'http', tls: { server_name: 'api.example', client_certificate: true, port: 443 } })), []);
  assert.deepEqual(checkConfig(withUp({ kind: 'tcp', tls: {} })), [
    {
      path: '/upstreams/x/tls',
      message: 'upstream "x": TLS origination relays the agent\'s plaintext HTTP, so kind must be "http" or "mcp" (is "tcp")',
    },
  ]);
  assert.match(checkConfig(withUp({ kind: 'http', tls: { server_name: 'Bad Name!' } }))[0].message, /server_name "Bad Name!" is not/);
  assert.match(checkConfig(withUp({ kind: 'http', tls: { sni: 'x' } }))[0].message, /unknown property "sni"/);
  const junk = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
  assert.match(checkConfig(withUp({ kind: 'http', ca: junk }))[0].message, /certificate 1 in ca does not parse/);
});
