// The intercepted-TLS paths of `npm run bench -- proxy` (one process): HTTPS over
// HTTP/1.1 and HTTP/2 and gRPC, each direct to a TLS upstream and through the
// dataplane intercepting (node CA leaf to the client, verified TLS upstream, every
// request decided), interleaved request by request on warm connections; plus the
// handshake cost (a new connection and one request) direct vs intercepted.
// And TLS origination: a plaintext HTTP/1.1 client through the dataplane, which
// decides and relays over TLS 1.3 to an upstream lilith.json marks tls, against
// a client speaking TLS 1.3 to that upstream directly.
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { readPolicyDir, toBundle } from '../pipeline/policy-source.js';
import { createAuthorizer, type EngineName } from '../cedar/index.js';
import { InterceptionCa, startDataplane, StaticOriginResolver } from '../enforcer/dataplane/index.js';
import { FileAuditSink } from '../enforcer/daemon/index.js';
import type { LilithConfig } from '../capsule/config.js';
import type { PolicySnapshot } from '../enforcer/control/index.js';
import { makeCert, rmCert } from '../testkit/tls-upstream.js';

export const summary =
  'intercepted TLS: HTTPS (HTTP/1.1, h2) and gRPC, and TLS origination: added latency vs direct TLS on warm connections, and handshake cost';

const codec = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };
const SAY: grpc.ServiceDefinition = {
  Say: {
    path: '/lilith.test.Echo/Say',
    requestStream: false,
    responseStream: false,
    requestSerialize: codec.serialize,
    requestDeserialize: codec.deserialize,
    responseSerialize: codec.serialize,
    responseDeserialize: codec.deserialize,
  },
};

const pct = (s: number[], p: number) => s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
const us = (n: number) => `${n.toFixed(0).padStart(6)} µs`;

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      iterations: { type: 'string', default: '4000' },
      handshakes: { type: 'string', default: '200' },
      engine: { type: 'string', default: 'fast' },
    },
    allowPositionals: true,
    strict: false,
  });
  const iterations = Number(values.iterations);
  const handshakes = Number(values.handshakes);
  const dir = await mkdtemp(join(tmpdir(), 'lilith-bench-tls-'));
  const selfSigned = makeCert('localhost', { ip: false });
  const { keyPem: key, certPem: cert } = selfSigned;

  // Upstreams: one HTTPS server speaking h2 and http/1.1, one gRPC server.
  const web = http2.createSecureServer({ key, cert, allowHTTP1: true }, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
  });
  const webSockets = new Set<net.Socket>();
  web.on('secureConnection', (s) => {
    webSockets.add(s);
    s.on('close', () => webSockets.delete(s));
  });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', () => r()));
  const webPort = (web.address() as net.AddressInfo).port;
  const g = new grpc.Server();
  g.addService(SAY, { Say: (c: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, c.request) });
  const grpcPort = await new Promise<number>((res, rej) =>
    g.bindAsync(
      '127.0.0.1:0',
      grpc.ServerCredentials.createSsl(null, [{ private_key: Buffer.from(key), cert_chain: Buffer.from(cert) }]),
      (e, p) => (e ? rej(e) : res(p)),
    ),
  );

  // The originated-to upstream: HTTPS (HTTP/1.1) accepting TLS 1.3 only.
  const origin = https.createServer({ key, cert, minVersion: 'TLSv1.3' }, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
  });
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', () => r()));
  const originPort = (origin.address() as net.AddressInfo).port;

  // The dataplane on the bundled policies, both upstreams declared kind tls with their CA pinned.
  await cp('policies', join(dir, 'p'), { recursive: true });
  const cfg = JSON.parse(await readFile(join(dir, 'p', 'lilith.json'), 'utf8')) as LilithConfig;
  cfg.upstreams = {
    web: { address: `127.0.0.1:${webPort}`, kind: 'tls', ca: cert },
    grpc: { address: `127.0.0.1:${grpcPort}`, kind: 'tls', ca: cert },
    api: { address: `127.0.0.1:${originPort}`, kind: 'http', ca: cert, tls: { server_name: 'localhost' } },
  };
  await writeFile(join(dir, 'p', 'lilith.json'), JSON.stringify(cfg));
  const entities = JSON.parse(await readFile(join(dir, 'p', 'entities.json'), 'utf8')) as unknown[];
  entities.push({
    uid: { type: 'Host', id: 'localhost' },
    attrs: {},
    parents: [
      { type: 'Zone', id: 'allowlisted' },
      { type: 'Zone', id: 'internal' },
    ],
  });
  await writeFile(join(dir, 'p', 'entities.json'), JSON.stringify(entities));
  const src = await readPolicyDir(join(dir, 'p'));
  const bundle = toBundle(src);
  const snap: PolicySnapshot = {
    watermark: 1,
    digest: 'bench',
    sourceCommit: null,
    expiresAt: new Date(Date.now() + 3600_000),
    config: cfg,
    entities: bundle.entities,
    authorizer: createAuthorizer(bundle, values.engine as EngineName),
    schema: src.schema,
  };
  const ca = await InterceptionCa.open(join(dir, 'ca'));
  const audit = new FileAuditSink(join(dir, 'audit.jsonl'));
  let ports = { web: 0, grpc: 0, origin: 0 };
  const upstreamOf = (local: number) => (local === ports.grpc ? grpcPort : local === ports.origin ? originPort : webPort);
  const dp = await startDataplane({
    snapshots: { get: () => snap },
    origin: new StaticOriginResolver({
      destination: (peer) => ({ address: '127.0.0.1', port: upstreamOf(peer.localPort ?? 0), family: 4 }),
      facts: { pid: process.pid, cgroupPath: '/lilith/agents/coder' },
    }),
    audit,
    ca,
    listen: { proxy: ['127.0.0.1:0', '127.0.0.1:0', '127.0.0.1:0'], dns: null },
  });
  ports = { web: dp.proxyAddresses[0].port, grpc: dp.proxyAddresses[1].port, origin: dp.proxyAddresses[2].port };

  // Clients: keep-alive HTTPS agents, h2 sessions, gRPC channels — direct and through the proxy.
  const agentOpts = { keepAlive: true, maxSockets: 1, ca: [cert, ca.certPem], servername: 'localhost' };
  const h1 = (port: number, agent: https.Agent) => () =>
    new Promise<void>((resolve, reject) => {
      const req = https.request(
        { host: '127.0.0.1', port, path: '/x', agent, servername: 'localhost', headers: { host: `localhost:${port}` } },
        (res) => {
          res.resume();
          res.on('end', () => resolve());
        },
      );
      req.on('error', reject);
      req.end();
    });
  // Originated: the client speaks plaintext to the upstream's address (the proxy here), Host naming it.
  const plain = (port: number, agent: http.Agent) => () =>
    new Promise<void>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path: '/x', agent, headers: { host: `localhost:${originPort}` } }, (res) => {
        res.resume();
        res.on('end', () => resolve());
      });
      req.on('error', reject);
      req.end();
    });
  const h2 = (session: http2.ClientHttp2Session) => () =>
    new Promise<void>((resolve, reject) => {
      const req = session.request({ ':path': '/x' });
      req.resume();
      req.on('end', () => resolve());
      req.on('error', reject);
    });
  const grpcCall = (client: grpc.Client) => () =>
    new Promise<void>((resolve, reject) =>
      (client as unknown as { Say: (a: Buffer, cb: (e: Error | null) => void) => void }).Say(Buffer.from('x'), (e) =>
        e ? reject(e) : resolve(),
      ),
    );
  const Echo = grpc.makeGenericClientConstructor(SAY, 'Echo');
  const grpcCreds = grpc.credentials.createSsl(Buffer.from(cert + ca.certPem));
  const directAgent = new https.Agent(agentOpts);
  const proxyAgent = new https.Agent(agentOpts);
  const directH2 = http2.connect(`https://localhost:${webPort}`, { ca: [cert] });
  const proxyH2 = http2.connect(`https://localhost:${ports.web}`, { ca: [ca.certPem] });
  const originDirect = new https.Agent(agentOpts);
  const originLilith = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const directGrpc = new Echo(`localhost:${grpcPort}`, grpcCreds);
  const proxyGrpc = new Echo(`localhost:${ports.grpc}`, grpcCreds);
  const paths = [
    { name: 'https h1 direct', f: h1(webPort, directAgent) },
    { name: 'https h1 lilith', f: h1(ports.web, proxyAgent) },
    { name: 'https h2 direct', f: h2(directH2) },
    { name: 'https h2 lilith', f: h2(proxyH2) },
    { name: 'grpc direct', f: grpcCall(directGrpc) },
    { name: 'grpc lilith', f: grpcCall(proxyGrpc) },
    { name: 'originate direct', f: h1(originPort, originDirect) },
    { name: 'originate lilith', f: plain(ports.origin, originLilith) },
  ];
  for (let i = 0; i < 300; i++) for (const p of paths) await p.f();
  const times = paths.map(() => [] as number[]);
  for (let i = 0; i < iterations; i++)
    for (let k = 0; k < paths.length; k++) {
      const t0 = process.hrtime.bigint();
      await paths[k].f();
      times[k].push(Number(process.hrtime.bigint() - t0) / 1000);
    }
  const stats = times.map((t) => {
    const s = [...t].sort((a, b) => a - b);
    return { p50: pct(s, 50), p99: pct(s, 99) };
  });
  process.stdout.write(`\nintercepted TLS (one process, ${iterations} sequential requests per path on warm connections, interleaved)\n`);
  for (let k = 0; k < paths.length; k++)
    process.stdout.write(`  ${paths[k].name.padEnd(17)} p50 ${us(stats[k].p50)}   p99 ${us(stats[k].p99)}\n`);
  process.stdout.write('  added by lilith (minus direct TLS; originate: a plaintext client via lilith minus a TLS 1.3 client):\n');
  const added: number[] = [];
  for (let k = 0; k < paths.length; k += 2) {
    const a = stats[k + 1].p50 - stats[k].p50;
    // The target is interception's; origination (plaintext in, TLS out) is reported beside it.
    if (!paths[k].name.startsWith('originate')) added.push(a);
    process.stdout.write(
      `    ${paths[k].name.replace(' direct', '').padEnd(12)} p50 ${us(a)}   p99 ${us(stats[k + 1].p99 - stats[k].p99)}\n`,
    );
  }

  // Handshake cost: a fresh TLS connection and one request, direct vs intercepted.
  const fresh = (port: number) => () =>
    new Promise<void>((resolve, reject) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          port,
          path: '/x',
          agent: false,
          ca: [cert, ca.certPem],
          servername: 'localhost',
          headers: { host: 'localhost', connection: 'close' },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve());
        },
      );
      req.on('error', reject);
      req.end();
    });
  // Originated: a fresh plaintext connection to the proxy, which opens a fresh TLS 1.3 one upstream.
  const freshPlain = (port: number) => () =>
    new Promise<void>((resolve, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port, path: '/x', agent: false, headers: { host: `localhost:${originPort}`, connection: 'close' } },
        (res) => {
          res.resume();
          res.on('end', () => resolve());
        },
      );
      req.on('error', reject);
      req.end();
    });
  const hs = [fresh(webPort), fresh(ports.web), fresh(originPort), freshPlain(ports.origin)];
  const hsTimes: number[][] = hs.map(() => []);
  for (let i = 0; i < 20; i++) for (const f of hs) await f();
  for (let i = 0; i < handshakes; i++)
    for (let k = 0; k < hs.length; k++) {
      const t0 = process.hrtime.bigint();
      await hs[k]();
      hsTimes[k].push(Number(process.hrtime.bigint() - t0) / 1000);
    }
  const hp = hsTimes.map((t) =>
    pct(
      [...t].sort((a, b) => a - b),
      50,
    ),
  );
  process.stdout.write(
    `  new connection + one request (${handshakes}×): direct p50 ${us(hp[0])}, intercepted p50 ${us(hp[1])} (handshake cost added ${us(hp[1] - hp[0])})\n`,
  );
  process.stdout.write(
    `  originated, new connection + one request (${handshakes}×): direct TLS 1.3 p50 ${us(hp[2])}, plaintext via lilith p50 ${us(hp[3])} (added ${us(hp[3] - hp[2])})\n`,
  );
  const worst = Math.max(...added);
  process.stdout.write(
    `\ntarget: added p50 ≤ 100 µs per request on a warm connection: ${worst.toFixed(0)} µs ${worst <= 100 ? 'met' : 'MISSED'}\n`,
  );

  directAgent.destroy();
  originDirect.destroy();
  originLilith.destroy();
  proxyAgent.destroy();
  directH2.close();
  proxyH2.close();
  directGrpc.close();
  proxyGrpc.close();
  await dp.close();
  await audit.close();
  snap.authorizer.dispose();
  for (const s of webSockets) s.destroy();
  await new Promise<void>((r) => web.close(() => r()));
  origin.closeAllConnections();
  await new Promise<void>((r) => origin.close(() => r()));
  await new Promise<void>((r) => g.tryShutdown(() => r()));
  await rm(dir, { recursive: true, force: true });
  rmCert(selfSigned);
}
