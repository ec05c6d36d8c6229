// Real upstream peers for dataplane tests: an HTTP server with a few routes, a
// TLS server with a self-signed cert (testkit/tls-upstream.ts), a TCP echo server, and a
// UDP DNS server answering fixed A records.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import dgram from 'node:dgram';
import { createHash } from 'node:crypto';
import { listen } from './helpers.js';
import { makeCert, rmCert } from '../../testkit/tls-upstream.js';

export interface HttpUpstream {
  port: number;
  server: http.Server;
  requests: Array<{ method: string; url: string; host: string; bodyBytes: number; sha256: string }>;
  openSockets(): number;
  close(): Promise<void>;
}

/** Routes: /hello, /api/echo (streams the body back), /big?n=BYTES (chunked), /reset-mid (headers, some body, then RST). */
export function httpHandler(requests: HttpUpstream['requests']): http.RequestListener {
  return (req, res) => {
    const hash = createHash('sha256');
    let bytes = 0;
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/api/echo') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      req.on('data', (d: Buffer) => {
        bytes += d.length;
        hash.update(d);
      });
      req.pipe(res);
      req.on('end', () =>
        requests.push({ method: req.method!, url: req.url!, host: req.headers.host ?? '', bodyBytes: bytes, sha256: hash.digest('hex') }),
      );
      return;
    }
    req.on('data', (d: Buffer) => {
      bytes += d.length;
      hash.update(d);
    });
    req.on('end', () => {
      requests.push({ method: req.method!, url: req.url!, host: req.headers.host ?? '', bodyBytes: bytes, sha256: hash.digest('hex') });
      if (url.pathname === '/big') {
        const n = Number(url.searchParams.get('n') ?? 1_000_000);
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const block = Buffer.alloc(64 * 1024, 0x61);
        let sent = 0;
        const pump = () => {
          while (sent < n) {
            const part = block.subarray(0, Math.min(block.length, n - sent));
            sent += part.length;
            if (!res.write(part)) return void res.once('drain', pump);
          }
          res.end();
        };
        pump();
      } else if (url.pathname === '/secret') {
        // A PEM private key split over two writes, so the header straddles a read boundary.
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('config dump\n-----BEGIN OPENSSH PRI');
        setTimeout(() => res.end('VATE KEY-----\nb3BlbnNzaC1rZXk=\n-----END OPENSSH PRIVATE KEY-----\n'), 20);
      } else if (url.pathname === '/reset-mid') {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '100000' });
        res.write('partial');
        setTimeout(() => req.socket.resetAndDestroy(), 50);
      } else {
        const body = `hello ${req.method} ${req.url}`;
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(body.length) });
        res.end(req.method === 'HEAD' ? undefined : body);
      }
    });
  };
}

export async function startHttpUpstream(): Promise<HttpUpstream> {
  const requests: HttpUpstream['requests'] = [];
  const server = http.createServer(httpHandler(requests));
  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const port = await listen(server);
  return {
    port,
    server,
    requests,
    openSockets: () => sockets.size,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export interface TlsUpstream {
  port: number;
  /** TCP connections the server accepted so far. */
  connections(): number;
  certPem: string;
  certPath: string;
  close(): Promise<void>;
}

/** HTTPS server with a fresh self-signed certificate for localhost (openssl). */
export async function startTlsUpstream(): Promise<TlsUpstream> {
  const cert = makeCert('localhost');
  const certPem = cert.certPem;
  const server = https.createServer({ key: cert.keyPem, cert: certPem }, httpHandler([]));
  let accepted = 0;
  server.on('connection', () => accepted++);
  const port = await listen(server);
  return {
    port,
    connections: () => accepted,
    certPem,
    certPath: cert.certPath,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      rmCert(cert);
    },
  };
}

export async function startEchoServer(host = '127.0.0.1'): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, host, () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A DNS server answering every A query with `answers[name]` (or NXDOMAIN), counting queries it saw. */
export async function startDnsServer(
  answers: Record<string, string>,
): Promise<{ port: number; seen: string[]; raw: Buffer[]; close(): Promise<void> }> {
  const sock = dgram.createSocket('udp4');
  const seen: string[] = [];
  const raw: Buffer[] = [];
  sock.on('message', (msg, rinfo) => {
    raw.push(msg);
    let off = 12;
    const labels: string[] = [];
    while (msg[off]) {
      labels.push(msg.toString('latin1', off + 1, off + 1 + msg[off]));
      off += msg[off] + 1;
    }
    const qend = off + 5;
    const name = labels.join('.');
    seen.push(name);
    const ip = answers[name];
    const header = Buffer.from(msg.subarray(0, 12));
    header.writeUInt16BE(0x8180 | (ip ? 0 : 3), 2);
    header.writeUInt16BE(ip ? 1 : 0, 6);
    header.writeUInt32BE(0, 8); // no authority or additional records in the answer
    const parts = [header, msg.subarray(12, qend)];
    if (ip) parts.push(Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, ...ip.split('.').map(Number)]));
    sock.send(Buffer.concat(parts), rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  return { port: sock.address().port, seen, raw, close: () => new Promise<void>((r) => sock.close(() => r())) };
}
