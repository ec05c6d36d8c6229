// Real TLS upstreams for the interception tests: an HTTPS server speaking HTTP/2
// and HTTP/1.1 (ALPN), a TLS front for a plaintext server (MCP over HTTPS), git
// http-backend behind HTTPS, and a @grpc/grpc-js server with TLS. Certificates are
// made by openssl (testkit/tls-upstream.ts), self-signed: the capsule pins them (upstreams.*.ca), or they
// stand for an upstream whose certificate does not verify.
import { spawn } from 'node:child_process';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { listen } from './helpers.js';
import type { TestCert } from '../../testkit/tls-upstream.js';

export { makeCert, rmCert, type TestCert } from '../../testkit/tls-upstream.js';

export const PRIVATE_KEY_TEXT = '-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAtest\n-----END RSA PRIVATE KEY-----\n';

export interface Upstream {
  port: number;
  requests: Array<{ version: string; method: string; url: string; authority: string; body: string; headers: http2.IncomingHttpHeaders }>;
  /**
   * Every request as it arrives (before its body): what reached the upstream at all. `ended`: its
   * stream really ended (END_STREAM), not reset; `requests` also holds requests whose stream was reset.
   */
  arrivals: Array<{ method: string; url: string; headers: http2.IncomingHttpHeaders; bodyBytes: number; ended: boolean }>;
  close(): Promise<void>;
}

/** HTTPS on h2 and http/1.1: answers "<version> <METHOD> <url>"; /secret answers a private key (taints). */
export async function startH2Upstream(cert: TestCert): Promise<Upstream> {
  const requests: Upstream['requests'] = [];
  const arrivals: Upstream['arrivals'] = [];
  const server = http2.createSecureServer({ key: cert.keyPem, cert: cert.certPem, allowHTTP1: true }, (req, res) => {
    const chunks: Buffer[] = [];
    const arrival = { method: req.method, url: req.url, headers: req.headers, bodyBytes: 0, ended: false };
    arrivals.push(arrival);
    req.on('data', (d: Buffer) => {
      chunks.push(d);
      arrival.bodyBytes += d.length;
    });
    req.on('end', () => {
      // Node's compatibility request ends even when its stream was reset (then aborted is set first).
      arrival.ended = !req.aborted;
      const body = Buffer.concat(chunks).toString();
      requests.push({
        version: req.httpVersion,
        method: req.method,
        url: req.url,
        authority: req.authority ?? req.headers.host ?? '',
        body,
        headers: req.headers,
      });
      if (req.url === '/secret') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(PRIVATE_KEY_TEXT);
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`${req.httpVersion} ${req.method} ${req.url}${body ? ` ${body}` : ''}`);
    });
  });
  const sockets = new Set<net.Socket>();
  server.on('secureConnection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const port = await listen(server as unknown as tls.Server);
  return {
    port,
    requests,
    arrivals,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export interface H2Server {
  port: number;
  /** Sessions open now (a test may GOAWAY or close one). */
  sessions: Set<http2.ServerHttp2Session>;
  close(): Promise<void>;
}

/**
 * HTTPS on h2 only, each request handed to `handler` (the compatibility API; `res.stream` is the
 * frame-level stream), with the SETTINGS a test wants (e.g. maxConcurrentStreams).
 */
export async function startH2Server(
  cert: TestCert,
  handler: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
  settings: http2.Settings = {},
): Promise<H2Server> {
  const server = http2.createSecureServer({ key: cert.keyPem, cert: cert.certPem, settings }, handler);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sessions.delete(s));
  });
  const port = await listen(server as unknown as tls.Server);
  return {
    port,
    sessions,
    close: async () => {
      for (const s of sessions) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** TLS in front of a plaintext TCP server on `targetPort` (an HTTPS face for the SDK's MCP server). */
export async function startTlsFront(cert: TestCert, targetPort: number): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = tls.createServer({ key: cert.keyPem, cert: cert.certPem, ALPNProtocols: ['http/1.1'] }, (s) => {
    const t = net.connect(targetPort, '127.0.0.1');
    sockets.add(s);
    sockets.add(t);
    s.pipe(t).pipe(s);
    const done = () => {
      s.destroy();
      t.destroy();
    };
    s.on('error', done);
    t.on('error', done);
    s.on('close', done);
    t.on('close', done);
  });
  const port = await listen(server);
  return {
    port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** git http-backend (CGI) behind HTTPS, serving the repositories under `root` at /<prefix>/<name>.git. */
export async function startGitHttps(cert: TestCert, root: string): Promise<{ port: number; close(): Promise<void> }> {
  const server = https.createServer({ key: cert.keyPem, cert: cert.certPem }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://x');
    const child = spawn('git', ['http-backend'], {
      env: {
        ...process.env,
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: '1',
        PATH_INFO: decodeURIComponent(url.pathname),
        REQUEST_METHOD: req.method,
        QUERY_STRING: url.search.slice(1),
        CONTENT_TYPE: req.headers['content-type'] ?? '',
        REMOTE_ADDR: '127.0.0.1',
        GIT_HTTP_MAX_REQUEST_BUFFER: '100M',
      },
    });
    req.pipe(child.stdin);
    const out: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.on('close', () => {
      const all = Buffer.concat(out);
      const sep = all.indexOf('\r\n\r\n') >= 0 ? all.indexOf('\r\n\r\n') : all.indexOf('\n\n');
      const headText = all.subarray(0, sep).toString();
      const body = all.subarray(sep + (all[sep] === 13 ? 4 : 2));
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of headText.split(/\r?\n/)) {
        const i = line.indexOf(':');
        if (i < 0) continue;
        const n = line.slice(0, i).trim().toLowerCase();
        const v = line.slice(i + 1).trim();
        if (n === 'status') status = Number(v.split(' ')[0]);
        else headers[n] = v;
      }
      res.writeHead(status, headers);
      res.end(body);
    });
  });
  const port = await listen(server);
  return {
    port,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const bufferCodec = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };

/** The test services: lilith.test.Echo/Say (echoes) and lilith.test.Admin/Wipe (grpc-no-admin forbids it). */
export const GRPC_SERVICES = {
  echo: {
    Say: {
      path: '/lilith.test.Echo/Say',
      requestStream: false,
      responseStream: false,
      requestSerialize: bufferCodec.serialize,
      requestDeserialize: bufferCodec.deserialize,
      responseSerialize: bufferCodec.serialize,
      responseDeserialize: bufferCodec.deserialize,
    },
  },
  admin: {
    Wipe: {
      path: '/lilith.test.Admin/Wipe',
      requestStream: false,
      responseStream: false,
      requestSerialize: bufferCodec.serialize,
      requestDeserialize: bufferCodec.deserialize,
      responseSerialize: bufferCodec.serialize,
      responseDeserialize: bufferCodec.deserialize,
    },
    Watch: method('/lilith.test.Admin/Watch', true, true),
  },
  /** Streaming shapes: ServerStream (N messages for "N"), ClientStream (counts), Bidi (echoes), Fail (a status with trailing metadata). */
  stream: {
    ServerStream: method('/lilith.test.Stream/ServerStream', false, true),
    ClientStream: method('/lilith.test.Stream/ClientStream', true, false),
    Bidi: method('/lilith.test.Stream/Bidi', true, true),
    Fail: method('/lilith.test.Stream/Fail', false, false),
  },
} satisfies Record<string, grpc.ServiceDefinition>;

function method(path: string, requestStream: boolean, responseStream: boolean) {
  return {
    path,
    requestStream,
    responseStream,
    requestSerialize: bufferCodec.serialize,
    requestDeserialize: bufferCodec.deserialize,
    responseSerialize: bufferCodec.serialize,
    responseDeserialize: bufferCodec.deserialize,
  };
}

export async function startGrpcServer(cert: TestCert): Promise<{ port: number; calls: string[]; close(): Promise<void> }> {
  const calls: string[] = [];
  const server = new grpc.Server();
  server.addService(GRPC_SERVICES.echo, {
    Say: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      calls.push(`Say ${call.request.toString()}`);
      cb(null, Buffer.from(`echo: ${call.request.toString()}`));
    },
  });
  server.addService(GRPC_SERVICES.admin, {
    Wipe: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      calls.push('Wipe');
      cb(null, Buffer.from('wiped'));
    },
    Watch: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      calls.push('Watch');
      call.end();
    },
  });
  server.addService(GRPC_SERVICES.stream, {
    ServerStream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      const n = Number(call.request.toString());
      calls.push(`ServerStream ${n}`);
      for (let i = 0; i < n; i++) call.write(Buffer.from(`message ${i}`));
      const trailing = new grpc.Metadata();
      trailing.set('x-count', String(n));
      call.end(trailing);
    },
    ClientStream: (call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      let messages = 0;
      let bytes = 0;
      call.on('data', (d: Buffer) => {
        messages++;
        bytes += d.length;
      });
      call.on('end', () => {
        calls.push(`ClientStream ${messages}`);
        cb(null, Buffer.from(`${messages} messages, ${bytes} bytes`));
      });
    },
    Bidi: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      let messages = 0;
      call.on('data', (d: Buffer) => {
        messages++;
        call.write(Buffer.from(`echo: ${d.toString()}`));
      });
      call.on('end', () => {
        calls.push(`Bidi ${messages}`);
        call.end();
      });
    },
    Fail: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      calls.push(`Fail ${call.request.toString()}`);
      const metadata = new grpc.Metadata();
      metadata.set('x-reason', 'tested');
      metadata.set('x-detail-bin', Buffer.from([0, 1, 2, 255]));
      cb({ code: grpc.status.FAILED_PRECONDITION, details: 'not today: ünïcode', metadata });
    },
  });
  const creds = grpc.ServerCredentials.createSsl(null, [{ private_key: Buffer.from(cert.keyPem), cert_chain: Buffer.from(cert.certPem) }]);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    port,
    calls,
    close: () => new Promise<void>((r) => server.tryShutdown(() => r())),
  };
}
