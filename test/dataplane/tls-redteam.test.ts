// Red-team attempts on TLS and HTTP/2, against real servers and clients:
// "trust the agent's own CA" (an upstream presenting a certificate from a CA the
// agent made, while the agent trusts that CA itself and points every CA variable
// at it, is refused by the enforcer, intercepted or originated), and "tunnel
// through HTTP/2 CONNECT" (plain and extended CONNECT on an intercepted session
// are reset before anything reaches the upstream; the session serves on).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { startHarness, loopback, listen, type Harness } from './helpers.js';
import { startH2Upstream } from './tls-upstreams.js';
import { issueLeaf, makeCa, makeCert, rmCert, type TestCert } from '../../testkit/tls-upstream.js';
import { InterceptionCa } from '../../enforcer/dataplane/tls/ca.js';
import { frame as h2Frame, H2_PREFACE, hpackLiteral, splitFrames } from '../../testkit/h2-wire.js';

const run = promisify(execFile);
let caDir: string;
let ca: InterceptionCa;
let agentCa: TestCert;
let agentLeaf: TestCert;
/** The node CA and the agent's own CA in one bundle: what the agent trusts. */
let agentBundle: string;
const cleanups: Array<() => unknown> = [];

before(async () => {
  caDir = await mkdtemp(join(tmpdir(), 'lilith-rt-ca-'));
  ca = await InterceptionCa.open(join(caDir, 'ca'));
  // The agent's CA, named like the node CA: a name is not a trust anchor.
  agentCa = makeCa('Lilith interception CA');
  agentLeaf = issueLeaf(agentCa, 'localhost');
  agentBundle = join(caDir, 'agent-bundle.pem');
  await writeFile(agentBundle, ca.certPem + agentCa.certPem);
});
after(async () => {
  for (const c of cleanups.reverse()) await c();
  rmCert(agentLeaf);
  rmCert(agentCa);
  await rm(caDir, { recursive: true, force: true });
});

/** An HTTPS upstream with the agent-made certificate; counts the connections and requests it got. */
async function agentSignedUpstream(): Promise<{ port: number; requests: () => number; connections: () => number }> {
  let requests = 0;
  let connections = 0;
  const server = https.createServer({ key: agentLeaf.keyPem, cert: agentLeaf.certPem }, (_req, res) => {
    requests++;
    res.end('secret from the agent-controlled upstream');
  });
  server.on('connection', () => connections++);
  const port = await listen(server);
  cleanups.push(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { port, requests: () => requests, connections: () => connections };
}

async function harness(port: number, up: 'intercept' | 'originate'): Promise<Harness> {
  const h = await startHarness({
    destination: loopback(port),
    tweaks: {
      config: (c) => {
        // Declared, no pin: the system store decides, which the agent cannot write to.
        c.upstreams.up =
          up === 'intercept'
            ? { address: `127.0.0.1:${port}`, kind: 'tls' }
            : { address: `127.0.0.1:${port}`, kind: 'http', tls: { server_name: 'localhost' } };
      },
    },
    extra: { ca },
  });
  cleanups.push(() => h.close());
  return h;
}

test("trust the agent's own CA, intercepted: the agent trusts it everywhere it can, the enforcer still refuses the upstream", async () => {
  const up = await agentSignedUpstream();
  const h = await harness(up.port, 'intercept');
  // Every variable a runtime reads for its trust store points at the agent's bundle: they are the agent's, not the enforcer's.
  const env = {
    ...process.env,
    SSL_CERT_FILE: agentBundle,
    CURL_CA_BUNDLE: agentBundle,
    NODE_EXTRA_CA_CERTS: agentBundle,
    REQUESTS_CA_BUNDLE: agentBundle,
  };
  const r = await run('curl', ['-sS', '--max-time', '20', '--cacert', agentBundle, `https://localhost:${h.proxy.port}/`], { env }).catch(
    (e: { stdout: string; stderr: string }) => e,
  );
  assert.doesNotMatch(r.stdout, /secret/);
  const d = (await h.events()).at(-1)!;
  assert.equal(`${d.action} ${d.resource} ${d.decision}`, 'Action::"intercept" Host::"localhost" deny');
  assert.match(
    d.reason ?? '',
    /upstream certificate failed verification \((SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|UNABLE_TO_VERIFY_LEAF_SIGNATURE)\)/,
  );
  assert.ok(up.connections() >= 1, 'the enforcer reached the upstream and refused its certificate');
  assert.equal(up.requests(), 0, 'no request reached the agent-controlled upstream');
});

test("trust the agent's own CA, originated: plaintext from the agent, the enforcer's TLS to the upstream refuses its certificate", async () => {
  const up = await agentSignedUpstream();
  const h = await harness(up.port, 'originate');
  const r = await run('curl', ['-sS', '--max-time', '20', `http://localhost:${h.proxy.port}/`]).catch((e: { stdout: string }) => e);
  assert.match(r.stdout, /"error":"bad gateway"/);
  const d = (await h.events()).at(-1)!;
  assert.equal(d.decision, 'deny');
  assert.match(d.reason ?? '', /upstream certificate failed verification/);
  assert.equal(up.requests(), 0);
});

/** Sends raw HTTP/2 frames on an intercepted TLS session and collects the frames back for `ms`. */
async function rawH2(port: number, frames: Buffer[], ms = 1500): Promise<Array<{ type: number; stream: number; payload: Buffer }>> {
  const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: ca.certPem, ALPNProtocols: ['h2'] });
  await new Promise<void>((resolve, reject) => {
    s.once('secureConnect', () => resolve());
    s.once('error', reject);
  });
  assert.equal(s.alpnProtocol, 'h2');
  let buf = Buffer.alloc(0);
  s.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
  });
  s.on('error', () => undefined);
  s.write(Buffer.concat([H2_PREFACE, h2Frame(4, 0, 0, Buffer.alloc(0)), ...frames]));
  await new Promise((r) => setTimeout(r, ms));
  s.destroy();
  return splitFrames(buf).frames;
}

test('tunnel through HTTP/2 CONNECT: plain and extended CONNECT are reset before the upstream; the same session still serves a GET', async () => {
  const cert = makeCert('localhost');
  cleanups.push(() => rmCert(cert));
  const up = await startH2Upstream(cert);
  cleanups.push(() => up.close());
  const h = await startHarness({
    destination: loopback(up.port),
    tweaks: {
      config: (c) => {
        c.upstreams.up = { address: `127.0.0.1:${up.port}`, kind: 'tls', ca: cert.certPem };
      },
    },
    extra: { ca },
  });
  cleanups.push(() => h.close());
  const END_HEADERS = 0x4;
  const END_STREAM = 0x1;
  const connect = hpackLiteral([
    [':method', 'CONNECT'],
    [':authority', '127.0.0.2:22'],
  ]);
  const extended = hpackLiteral([
    [':method', 'CONNECT'],
    [':protocol', 'websocket'],
    [':scheme', 'https'],
    [':path', '/tunnel'],
    [':authority', 'localhost'],
  ]);
  const get = hpackLiteral([
    [':method', 'GET'],
    [':scheme', 'https'],
    [':path', '/after'],
    [':authority', 'localhost'],
  ]);
  const frames = await rawH2(h.proxy.port, [
    h2Frame(1, END_HEADERS, 1, connect),
    h2Frame(0, 0, 1, Buffer.from('SSH-2.0-tunnel\r\n')),
    h2Frame(1, END_HEADERS, 3, extended),
    h2Frame(0, 0, 3, Buffer.from('tunnelled bytes')),
    h2Frame(1, END_HEADERS | END_STREAM, 5, get),
  ]);
  const RST = 3;
  const HEADERS = 1;
  const resets = frames.filter((f) => f.type === RST).map((f) => f.stream);
  assert.ok(resets.includes(1), `plain CONNECT reset (frames: ${JSON.stringify(frames.map((f) => [f.type, f.stream]))})`);
  assert.ok(resets.includes(3), 'extended CONNECT reset');
  assert.ok(
    frames.some((f) => f.type === HEADERS && f.stream === 5),
    'the GET on the same session was answered',
  );
  assert.deepEqual(
    up.requests.map((r) => `${r.method} ${r.url}`),
    ['GET /after'],
    'neither CONNECT reached the upstream',
  );
  const evs = (await h.events()).filter((e) => e.protocol === 'http');
  assert.ok(
    evs.some((e) => e.decision === 'deny' && /CONNECT is not relayed/.test(e.reason ?? '')),
    'the plain CONNECT is audited',
  );
  assert.equal(evs.at(-1)!.action, 'Action::"GET"');
});
