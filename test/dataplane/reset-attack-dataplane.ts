// A dataplane with TLS interception in a process of its own, for
// reset-attack.test.ts: a crash here (SIGSEGV) is then an exit the test sees,
// not the end of the test runner. Upstreams, each on its own port and reached
// by the agent address the connection comes from (127.0.0.N):
//   .1 good: HTTPS on h2 and HTTP/1.1, its CA pinned;
//   .2 mtls: requires a client certificate the enforcer is not asked to present
//      (TLS 1.3: the refusal arrives after the handshake, while the agent's runs);
//   .3 badcert: a certificate that is not the pinned one;
//   .4 hostile: TLS whose HTTP/1.1 answers break off mid-response, are framed
//      wrongly or are reset (the relay resets the agent's TLS connection).
// Prints one JSON line when ready: { port, caPem, upstreams }; answers each stdin line with
// { open } (agent connections still open); stops on SIGTERM.
import http2 from 'node:http2';
import type net from 'node:net';
import tls from 'node:tls';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InterceptionCa } from '../../enforcer/dataplane/tls/ca.js';
import { IdentityCa } from '../../enforcer/dataplane/tls/svid.js';
import { loopback, startHarness } from './helpers.js';
import { makeCert, rmCert, startH2Upstream } from './tls-upstreams.js';

/** proxy.idle_timeout_ms of this dataplane. */
export const IDLE_MS = 3000;
const cert = makeCert('localhost');
const other = makeCert('localhost');
const good = await startH2Upstream(cert);

const listenTls = async (server: tls.Server | http2.Http2SecureServer): Promise<number> => {
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as net.AddressInfo).port;
};
const caDir = await mkdtemp(join(tmpdir(), 'lilith-reset-attack-'));
const identity = await IdentityCa.open(join(caDir, 'identity'));
const mtls = http2.createSecureServer(
  { key: cert.keyPem, cert: cert.certPem, allowHTTP1: true, requestCert: true, rejectUnauthorized: true, ca: identity.certPem },
  (_req, res) => res.end('mtls'),
);
const badcert = tls.createServer({ key: other.keyPem, cert: other.certPem, ALPNProtocols: ['h2', 'http/1.1'] }, (s) => {
  s.on('error', () => undefined);
  s.end();
});
// What the hostile upstream answers is chosen by the request path.
const hostile = tls.createServer({ key: cert.keyPem, cert: cert.certPem, ALPNProtocols: ['http/1.1'] }, (s) => {
  s.on('error', () => undefined);
  s.once('data', (d: Buffer) => {
    const path = /^[A-Z]+ (\S+)/.exec(d.toString('latin1'))?.[1] ?? '';
    if (path === '/cut') {
      s.write('HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\npartial');
      setImmediate(() => s.destroy());
    } else if (path === '/frame') s.end('HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!');
    else if (path === '/chunk') s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n');
    else if (path === '/101') s.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\nconnection: upgrade\r\n\r\n');
    else s.destroy();
  });
});
const ports = {
  good: good.port,
  mtls: await listenTls(mtls),
  badcert: await listenTls(badcert),
  hostile: await listenTls(hostile),
};
const byAgent: Record<string, number> = {
  '127.0.0.1': ports.good,
  '127.0.0.2': ports.mtls,
  '127.0.0.3': ports.badcert,
  '127.0.0.4': ports.hostile,
};
const ca = await InterceptionCa.open(join(caDir, 'ca'));
const h = await startHarness({
  destination: (peer) => {
    const port = byAgent[peer.remoteAddress];
    return port ? loopback(port) : null;
  },
  tweaks: {
    config: (c) => {
      // Short, so that the test can see every connection released within it (the bound on one that lingers).
      c.proxy.idle_timeout_ms = IDLE_MS;
      for (const [alias, port] of Object.entries(ports))
        c.upstreams[alias] = { address: `127.0.0.1:${port}`, kind: 'tls', ca: cert.certPem };
    },
  },
  extra: { ca },
});
process.stdout.write(`${JSON.stringify({ port: h.proxy.port, caPem: ca.certPem, upstreams: ports })}\n`);
// "stats" on stdin: the agent connections still open (each line answered with one JSON line).
process.stdin.on('data', () => process.stdout.write(`${JSON.stringify({ open: h.dp.activeConnections() })}\n`));

process.once('SIGTERM', () => {
  void (async () => {
    await h.close();
    await good.close();
    for (const s of [mtls, badcert, hostile]) s.close();
    rmCert(cert);
    rmCert(other);
    await rm(caDir, { recursive: true, force: true });
    process.exit(0);
  })();
});
