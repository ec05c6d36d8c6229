// The frame-level HTTP/2 relay (proxy/h2.ts, proxy/h2-peer.ts) under the
// behaviours a hand-written relay gets wrong, with real clients and servers on
// both ends (node:http2, @grpc/grpc-js) inside intercepted TLS: flow control
// with large bodies both ways and many streams at once, backpressure that keeps
// memory bounded while a reader stalls, gRPC streaming and trailers, an upstream
// that allows one stream at a time, goes away, or resets a stream mid-response,
// trailers only for clients that take them, bodiless responses, 100-continue,
// and the idle timeout.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { startHarness, loopback, type Harness } from './helpers.js';
import { GRPC_SERVICES, makeCert, rmCert, startGrpcServer, startH2Server, type H2Server, type TestCert } from './tls-upstreams.js';
import { InterceptionCa } from '../../enforcer/dataplane/tls/ca.js';
import type { LilithConfig } from '../../capsule/config.js';

const { HTTP2_HEADER_STATUS: STATUS } = http2.constants;
const MB = 1024 * 1024;
let cert: TestCert;
let ca: InterceptionCa;
let caDir: string;

before(async () => {
  cert = makeCert('localhost');
  caDir = await mkdtemp(join(tmpdir(), 'lilith-ca-'));
  ca = await InterceptionCa.open(join(caDir, 'ca'));
});
after(async () => {
  rmCert(cert);
  await rm(caDir, { recursive: true, force: true });
});

async function harnessFor(port: number, config?: (c: LilithConfig) => void): Promise<Harness> {
  return startHarness({
    destination: loopback(port),
    tweaks: {
      config: (c) => {
        c.upstreams.up = { address: `127.0.0.1:${port}`, kind: 'tls', ca: cert.certPem };
        config?.(c);
      },
    },
    extra: { ca },
  });
}

function connect(h: Harness): http2.ClientHttp2Session {
  const s = http2.connect(`https://localhost:${h.proxy.port}`, { ca: ca.certPem });
  s.on('error', () => undefined);
  return s;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Pseudo-random bytes, the same for a given seed: 64 KiB blocks, each stamped with its index (so a block out of order shows). */
const BLOCK = randomBytes(64 * 1024);
function blockAt(i: number, n: number): Buffer {
  const b = Buffer.from(BLOCK.subarray(0, Math.min(BLOCK.length, n - i * BLOCK.length)));
  if (b.length >= 8) b.writeBigUInt64BE(BigInt(i), 0);
  return b;
}
function bytesOf(n: number): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i * BLOCK.length < n; i++) parts.push(blockAt(i, n));
  return Buffer.concat(parts);
}
/** A stream of `n` such bytes made as they are read (`produced` counts what was pulled), with their sha256 at the end. */
function producer(n: number): { stream: Readable; produced: () => number; digest: Promise<string> } {
  let i = 0;
  let produced = 0;
  const hash = createHash('sha256');
  let done!: (d: string) => void;
  const digest = new Promise<string>((r) => (done = r));
  const stream = new Readable({
    highWaterMark: 64 * 1024,
    read() {
      if (produced >= n) {
        done(hash.digest('hex'));
        this.push(null);
        return;
      }
      const b = blockAt(i++, n);
      produced += b.length;
      hash.update(b);
      this.push(b);
    },
  });
  return { stream, produced: () => produced, digest };
}

interface Got {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
  trailers: http2.IncomingHttpHeaders | null;
  /**
   * The stream ended cleanly: END_STREAM, no reset. (Node's client emits 'end' on a reset stream
   * too, so 'end' alone does not say it: the stream also closed with NO_ERROR and no error.)
   */
  ended: boolean;
  rstCode: number;
  error: string | null;
  informational: number[];
}

/** One request on `session`; resolves when its stream closes, however it closes. */
function request(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body?: Buffer | Readable,
  hooks: { onResponse?: (req: http2.ClientHttp2Stream) => void; onContinue?: (req: http2.ClientHttp2Stream) => void } = {},
): Promise<Got> {
  return new Promise((resolve) => {
    const got: Got = {
      status: 0,
      headers: {},
      body: Buffer.alloc(0),
      trailers: null,
      ended: false,
      rstCode: -1,
      error: null,
      informational: [],
    };
    const chunks: Buffer[] = [];
    let req: http2.ClientHttp2Stream;
    try {
      req = session.request(headers, { endStream: body === undefined && !hooks.onContinue });
    } catch (err) {
      got.error = (err as NodeJS.ErrnoException).code ?? String(err);
      return resolve(got);
    }
    req.on('response', (h) => {
      got.status = Number(h[STATUS]);
      got.headers = h;
      hooks.onResponse?.(req);
    });
    req.on('headers', (h) => got.informational.push(Number(h[STATUS])));
    req.on('continue', () => hooks.onContinue?.(req));
    req.on('trailers', (t) => (got.trailers = t));
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => (got.ended = true));
    req.on('error', (e: NodeJS.ErrnoException) => (got.error = e.code ?? e.message));
    req.on('close', () => {
      got.body = Buffer.concat(chunks);
      got.rstCode = req.rstCode ?? -1;
      got.ended &&= got.rstCode === http2.constants.NGHTTP2_NO_ERROR && got.error === null;
      resolve(got);
    });
    if (body instanceof Readable) body.pipe(req);
    else if (body) req.end(body);
  });
}

/** Reads the whole request body and hashes it. */
function drain(req: http2.Http2ServerRequest): Promise<{ bytes: number; digest: string }> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let bytes = 0;
    req.on('data', (d: Buffer) => {
      bytes += d.length;
      hash.update(d);
    });
    req.on('end', () => resolve({ bytes, digest: hash.digest('hex') }));
    req.on('error', reject);
    // A paused request stays paused when a 'data' listener is added: resumed explicitly.
    req.resume();
  });
}

/**
 * The upstream for the flow-control tests: POST /api/upload answers "<bytes> <sha256>" of what it
 * received; GET /blob/<n> answers n stamped bytes (as octets: no text inspection), made as read.
 */
function blobHandler(extra?: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => boolean) {
  return (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    if (extra?.(req, res)) return;
    if (req.method === 'POST' && req.url.startsWith('/api/upload')) {
      void drain(req).then(({ bytes, digest }) => res.end(`${bytes} ${digest}`));
      return;
    }
    const m = /^\/blob\/(\d+)$/.exec(req.url);
    if (m) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': m[1] });
      producer(Number(m[1])).stream.pipe(res);
      return;
    }
    req.resume();
    res.end(`${req.method} ${req.url}`);
  };
}

const rss = () => process.memoryUsage().rss;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Resolves null after `ms`: the losing side of a race, which must not keep the process alive. */
const giveUp = (ms: number) => new Promise<null>((r) => setTimeout(() => r(null), ms).unref());

async function withRelay(
  handler: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
  body: (h: Harness, up: H2Server) => Promise<void>,
  opts: { settings?: http2.Settings; config?: (c: LilithConfig) => void } = {},
): Promise<void> {
  const up = await startH2Server(cert, handler, opts.settings);
  const h = await harnessFor(up.port, opts.config);
  try {
    await body(h, up);
  } finally {
    await h.close();
    await up.close();
  }
}

test('flow control: a 5 MB upload and a 5 MB download byte-exact, then 8 × 1 MB each way at once on one connection', async (t) => {
  await withRelay(blobHandler(), async (h) => {
    const session = connect(h);
    try {
      const five = bytesOf(5 * MB);
      let t0 = performance.now();
      const up = await request(session, { ':method': 'POST', ':path': '/api/upload', 'content-type': 'application/octet-stream' }, five);
      const upMs = performance.now() - t0;
      assert.equal(up.status, 200, `upload: ${JSON.stringify(up)}`);
      assert.equal(up.body.toString(), `${five.length} ${sha(five)}`, 'the upstream received the upload byte-exact');

      t0 = performance.now();
      const down = await request(session, { ':path': `/blob/${5 * MB}` });
      const downMs = performance.now() - t0;
      assert.equal(down.status, 200);
      assert.ok(down.ended);
      assert.equal(down.body.length, five.length);
      assert.equal(sha(down.body), sha(five), 'the download arrived byte-exact');
      t.diagnostic(`5 MB upload ${upMs.toFixed(0)} ms, 5 MB download ${downMs.toFixed(0)} ms`);

      const one = bytesOf(MB);
      t0 = performance.now();
      const all = await Promise.all([
        ...Array.from({ length: 8 }, (_, i) =>
          request(session, { ':method': 'POST', ':path': `/api/upload/${i}`, 'content-type': 'application/octet-stream' }, one),
        ),
        ...Array.from({ length: 8 }, () => request(session, { ':path': `/blob/${MB}` })),
      ]);
      t.diagnostic(`8 × 1 MB up + 8 × 1 MB down concurrently: ${(performance.now() - t0).toFixed(0)} ms`);
      for (const r of all.slice(0, 8)) assert.equal(r.body.toString(), `${one.length} ${sha(one)}`);
      for (const r of all.slice(8)) {
        assert.ok(r.ended);
        assert.equal(sha(r.body), sha(one));
      }
    } finally {
      session.close();
    }
  });
});

test('backpressure: a 50 MB download the client does not read for 2 s is not buffered; then it arrives intact', async (t) => {
  const size = 50 * MB;
  let made: ReturnType<typeof producer> | null = null;
  const handler = blobHandler((req, res) => {
    if (req.url !== '/big') return false;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size) });
    made = producer(size);
    made.stream.pipe(res);
    return true;
  });
  await withRelay(handler, async (h) => {
    const session = connect(h);
    try {
      // Warm the path (TLS contexts, the decision engine) before measuring.
      await request(session, { ':path': '/warm' });
      const before = rss();
      let paused: http2.ClientHttp2Stream | null = null;
      const got = request(session, { ':path': '/big' }, undefined, {
        onResponse: (req) => {
          req.pause();
          paused = req;
        },
      });
      await sleep(2000);
      const growth = rss() - before;
      const produced = made!.produced();
      t.diagnostic(
        `paused 2 s: the upstream produced ${(produced / 1024).toFixed(0)} KiB of ${size / MB} MB; RSS grew ${(growth / MB).toFixed(1)} MB`,
      );
      assert.ok(paused, 'the response head arrived');
      assert.ok(produced < 4 * MB, `the upstream was held back by flow control (produced ${produced})`);
      assert.ok(growth < 20 * MB, `RSS grew ${growth} bytes`);
      const hash = createHash('sha256');
      let n = 0;
      (paused as http2.ClientHttp2Stream).on('data', (d: Buffer) => {
        n += d.length;
        hash.update(d);
      });
      (paused as http2.ClientHttp2Stream).resume();
      const r = await got;
      assert.ok(r.ended, `ended (rst ${r.rstCode}, error ${r.error})`);
      assert.equal(n, size);
      assert.equal(hash.digest('hex'), await made!.digest, 'the 50 MB arrived byte-exact');
    } finally {
      session.close();
    }
  });
});

test('backpressure: an upstream that does not read a 50 MB upload for 2 s holds the client back; then it arrives intact', async (t) => {
  const size = 50 * MB;
  const handler = blobHandler((req, res) => {
    if (req.url !== '/api/slow-reader') return false;
    req.pause();
    setTimeout(() => void drain(req).then(({ bytes, digest }) => res.end(`${bytes} ${digest}`)), 2000);
    return true;
  });
  await withRelay(handler, async (h) => {
    const session = connect(h);
    try {
      await request(session, { ':path': '/warm' });
      const before = rss();
      const body = producer(size);
      const got = request(
        session,
        { ':method': 'POST', ':path': '/api/slow-reader', 'content-type': 'application/octet-stream' },
        body.stream,
      );
      await sleep(1800);
      const growth = rss() - before;
      const produced = body.produced();
      t.diagnostic(
        `upstream paused ~2 s: the client produced ${(produced / 1024).toFixed(0)} KiB of ${size / MB} MB; RSS grew ${(growth / MB).toFixed(1)} MB`,
      );
      assert.ok(produced < 4 * MB, `the client was held back by flow control (produced ${produced})`);
      assert.ok(growth < 20 * MB, `RSS grew ${growth} bytes`);
      const r = await got;
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), `${size} ${await body.digest}`, 'the upstream received the 50 MB byte-exact');
    } finally {
      session.close();
    }
  });
});

type Unary = (arg: Buffer, cb: (e: grpc.ServiceError | null, r?: Buffer) => void) => grpc.ClientUnaryCall;

test('gRPC through the relay: server-, client- and bidi-streaming, trailers and a failing status intact; a denied bidi call next to a live one', async () => {
  const server = await startGrpcServer(cert);
  const h = await harnessFor(server.port);
  const creds = grpc.credentials.createSsl(Buffer.from(ca.certPem));
  const Stream = grpc.makeGenericClientConstructor(GRPC_SERVICES.stream, 'Stream');
  const Admin = grpc.makeGenericClientConstructor(GRPC_SERVICES.admin, 'Admin');
  const target = `localhost:${h.proxy.port}`;
  const client = new Stream(target, creds) as unknown as Record<string, (...a: unknown[]) => unknown> & grpc.Client;
  const admin = new Admin(target, creds, { channelOverride: client.getChannel() }) as unknown as Record<
    string,
    (...a: unknown[]) => unknown
  > &
    grpc.Client;
  try {
    // Server streaming: 100 messages, then grpc-status 0 with trailing metadata.
    const ss = client.ServerStream(Buffer.from('100')) as grpc.ClientReadableStream<Buffer>;
    const got: string[] = [];
    ss.on('data', (d: Buffer) => got.push(d.toString()));
    const ssStatus = await new Promise<grpc.StatusObject>((r) => ss.on('status', r));
    assert.equal(ssStatus.code, grpc.status.OK);
    assert.deepEqual(
      got,
      Array.from({ length: 100 }, (_, i) => `message ${i}`),
    );
    assert.deepEqual(ssStatus.metadata.get('x-count'), ['100'], 'trailing metadata arrived');

    // Client streaming: 50 messages of 10 KiB in, one answer out.
    const cs = await new Promise<string>((resolve, reject) => {
      const call = client.ClientStream((err: grpc.ServiceError | null, res?: Buffer) =>
        err ? reject(err) : resolve(res!.toString()),
      ) as grpc.ClientWritableStream<Buffer>;
      for (let i = 0; i < 50; i++) call.write(Buffer.alloc(10 * 1024, i));
      call.end();
    });
    assert.equal(cs, `50 messages, ${50 * 10 * 1024} bytes`);

    // Bidi, with a denied bidi call (lilith.test.Admin/Watch) opened and refused in the middle of it.
    const bidi = client.Bidi() as grpc.ClientDuplexStream<Buffer, Buffer>;
    const echoes: string[] = [];
    bidi.on('data', (d: Buffer) => echoes.push(d.toString()));
    const bidiStatus = new Promise<grpc.StatusObject>((r) => bidi.on('status', r));
    for (let i = 0; i < 5; i++) bidi.write(Buffer.from(`a${i}`));
    const watch = admin.Watch() as grpc.ClientDuplexStream<Buffer, Buffer>;
    watch.on('data', () => undefined);
    watch.on('error', () => undefined);
    watch.write(Buffer.from('w'));
    const watchStatus = await new Promise<grpc.StatusObject>((r) => watch.on('status', r));
    assert.equal(watchStatus.code, grpc.status.PERMISSION_DENIED, watchStatus.details);
    assert.match(watchStatus.details, /grpc-no-admin/);
    for (let i = 0; i < 5; i++) bidi.write(Buffer.from(`b${i}`));
    bidi.end();
    assert.equal((await bidiStatus).code, grpc.status.OK);
    assert.deepEqual(echoes, [...[0, 1, 2, 3, 4].map((i) => `echo: a${i}`), ...[0, 1, 2, 3, 4].map((i) => `echo: b${i}`)]);

    // A failing call: its status, message (percent-encoded on the wire) and trailing metadata, text and binary.
    const fail = await new Promise<grpc.ServiceError>((resolve) =>
      (client.Fail as unknown as Unary).call(client, Buffer.from('x'), (err) => resolve(err!)),
    );
    assert.equal(fail.code, grpc.status.FAILED_PRECONDITION);
    assert.equal(fail.details, 'not today: ünïcode');
    assert.deepEqual(fail.metadata.get('x-reason'), ['tested']);
    assert.deepEqual(fail.metadata.get('x-detail-bin'), [Buffer.from([0, 1, 2, 255])]);
    assert.ok(!server.calls.includes('Watch'), 'the denied call never reached the server');
  } finally {
    client.close();
    admin.close();
    await h.close();
    await server.close();
  }
});

test('an upstream allowing one stream at a time: 10 concurrent requests on one agent connection all complete, one at a time upstream', async () => {
  let active = 0;
  let most = 0;
  const handler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    active++;
    most = Math.max(most, active);
    req.resume();
    res.on('close', () => active--);
    setTimeout(() => res.end(`done ${req.url}`), 30);
  };
  await withRelay(
    handler,
    async (h) => {
      const session = connect(h);
      try {
        const all = await Promise.all(Array.from({ length: 10 }, (_, i) => request(session, { ':path': `/slot/${i}` })));
        assert.deepEqual(
          all.map((r) => (r.status ? `${r.status} ${r.body}` : `rst ${r.rstCode} ${r.error}`)),
          Array.from({ length: 10 }, (_, i) => `200 done /slot/${i}`),
        );
        assert.equal(most, 1, 'never more than one stream open upstream');
      } finally {
        session.close();
      }
    },
    { settings: { maxConcurrentStreams: 1 } },
  );
});

test('upstream GOAWAY: a response in flight completes intact after the upstream closed; a stream it did not process is refused; a new connection works', async (t) => {
  // Under what the relay and the agent windows hold (2 × 64 KiB): all of it leaves the upstream while the agent reads none.
  const size = 100 * 1024;
  let held: http2.Http2ServerResponse | null = null;
  const handler = blobHandler((req, res) => {
    if (req.url === '/bye') {
      // The whole response, then a graceful close: GOAWAY, and the connection ends once the stream is done.
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size) });
      res.end(bytesOf(size));
      req.stream.session?.close();
      return true;
    }
    if (req.url === '/held') {
      held = res;
      return true;
    }
    if (req.url === '/unprocessed') {
      // GOAWAY naming only the first stream as processed: this one (stream 3) never will be.
      req.stream.session?.goaway(http2.constants.NGHTTP2_NO_ERROR, 1);
      setTimeout(() => held?.end('held done'), 100);
      return true;
    }
    return false;
  });
  await withRelay(handler, async (h) => {
    // 1. The response is all upstream and the upstream connection gone while the agent has not read it.
    const s1 = connect(h);
    let paused: http2.ClientHttp2Stream | null = null;
    const bye = request(s1, { ':path': '/bye' }, undefined, {
      onResponse: (req) => {
        req.pause();
        paused = req;
      },
    });
    await sleep(500);
    assert.ok(paused, 'the response head arrived');
    (paused as http2.ClientHttp2Stream).resume();
    const r1 = await bye;
    t.diagnostic(`after the upstream closed: ${r1.body.length} of ${size} bytes, ended ${r1.ended}, rst ${r1.rstCode}, error ${r1.error}`);
    assert.ok(r1.ended, 'the in-flight response ended cleanly');
    assert.equal(sha(r1.body), sha(bytesOf(size)), 'byte-exact');
    // Another request on the same agent connection after the upstream went away: refused, never hanging.
    const after1 = await Promise.race([request(s1, { ':path': '/late' }), giveUp(3000)]);
    assert.ok(after1, 'a request after the GOAWAY does not hang');
    t.diagnostic(`a request after the upstream's GOAWAY: status ${after1.status}, rst ${after1.rstCode}, error ${after1.error}`);
    assert.ok(after1.status === 0 || after1.status === 200, 'refused, or served on a fresh upstream');
    s1.destroy();

    // 2. A GOAWAY whose last stream is below a request in flight: that request is refused (retryable), the other completes.
    const s2 = connect(h);
    const first = request(s2, { ':path': '/held' });
    await sleep(100);
    const second = await Promise.race([request(s2, { ':path': '/unprocessed' }), giveUp(3000)]);
    assert.ok(second, 'the unprocessed stream does not hang');
    t.diagnostic(`the unprocessed stream: status ${second.status}, rst ${second.rstCode}, error ${second.error}`);
    assert.equal(second.rstCode, http2.constants.NGHTTP2_REFUSED_STREAM, 'refused with REFUSED_STREAM (safe to retry)');
    const r2 = await first;
    assert.equal(`${r2.status} ${r2.body}`, '200 held done');
    s2.destroy();

    // 3. A new agent connection is served.
    const s3 = connect(h);
    const r3 = await request(s3, { ':path': '/fresh' });
    assert.equal(`${r3.status} ${r3.body}`, '200 GET /fresh');
    s3.close();
  });
});

test('upstream RST_STREAM mid-response: the agent sees the stream reset, not a truncated success; other streams go on', async (t) => {
  const handler = blobHandler((req, res) => {
    if (req.url !== '/reset-me') return false;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(MB) });
    res.write(bytesOf(32 * 1024));
    setTimeout(() => req.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR), 50);
    return true;
  });
  await withRelay(handler, async (h) => {
    const session = connect(h);
    try {
      const [reset, other] = await Promise.all([request(session, { ':path': '/reset-me' }), request(session, { ':path': `/blob/${MB}` })]);
      t.diagnostic(
        `reset stream: status ${reset.status}, ${reset.body.length} bytes, ended ${reset.ended}, rst ${reset.rstCode}, error ${reset.error}`,
      );
      assert.equal(reset.status, 200);
      assert.equal(reset.ended, false, 'no clean end');
      assert.notEqual(reset.rstCode, http2.constants.NGHTTP2_NO_ERROR, 'reset with an error code');
      // The upstream failed the stream (INTERNAL_ERROR): the client is told it failed. (A CANCEL reads as
      // "no longer needed", which node:http2 reports as no error at all: a truncated body that looks complete.)
      assert.equal(reset.error, 'ERR_HTTP2_STREAM_ERROR', 'the client library reports the stream failed');
      assert.ok(reset.body.length < MB);
      assert.ok(other.ended);
      assert.equal(sha(other.body), sha(bytesOf(MB)));
      const again = await request(session, { ':path': '/again' });
      assert.equal(`${again.status} ${again.body}`, '200 GET /again', 'the connection goes on');
    } finally {
      session.close();
    }
  });
});

test('trailers: a client without te: trailers gets the body and a clean end, none; with te: trailers it gets them', async () => {
  const handler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    res.addTrailers({ 'x-checksum': 'abc123' });
    res.end('the body');
  };
  await withRelay(handler, async (h) => {
    const session = connect(h);
    try {
      const plain = await request(session, { ':path': '/t' });
      assert.equal(plain.body.toString(), 'the body');
      assert.ok(plain.ended, `clean end (rst ${plain.rstCode}, error ${plain.error})`);
      assert.equal(plain.rstCode, http2.constants.NGHTTP2_NO_ERROR);
      assert.equal(plain.trailers, null, 'no trailers to a client that did not ask');
      const te = await request(session, { ':path': '/t', te: 'trailers' });
      assert.equal(te.body.toString(), 'the body');
      assert.ok(te.ended);
      assert.equal(te.trailers?.['x-checksum'], 'abc123');
    } finally {
      session.close();
    }
  });
});

test('HEAD, 204 and 304 with content-length and no body pass; expect: 100-continue', async (t) => {
  const handler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    if (req.url === '/api/continue') {
      void drain(req).then(({ bytes }) => res.end(`got ${bytes}`));
      return;
    }
    req.resume();
    const stream = res.stream;
    if (req.url === '/head')
      stream.respond({ ':status': 200, 'content-length': '1234', 'content-type': 'text/plain' }, { endStream: true });
    else if (req.url === '/204') stream.respond({ ':status': 204 }, { endStream: true });
    else if (req.url === '/304') stream.respond({ ':status': 304, 'content-length': '1234', etag: '"x"' }, { endStream: true });
    else res.end('other');
  };
  await withRelay(handler, async (h) => {
    const session = connect(h);
    try {
      const head = await request(session, { ':method': 'HEAD', ':path': '/head' });
      assert.equal(head.status, 200, JSON.stringify(head));
      assert.equal(head.headers['content-length'], '1234');
      assert.ok(head.ended && head.body.length === 0);
      const nc = await request(session, { ':path': '/204' });
      assert.equal(nc.status, 204);
      assert.ok(nc.ended && nc.body.length === 0);
      const nm = await request(session, { ':path': '/304' });
      assert.equal(nm.status, 304);
      assert.equal(nm.headers['content-length'], '1234');
      assert.ok(nm.ended && nm.body.length === 0);

      const body = bytesOf(100 * 1024);
      let continued = false;
      const cont = await request(
        session,
        { ':method': 'POST', ':path': '/api/continue', 'content-type': 'application/octet-stream', expect: '100-continue' },
        undefined,
        {
          onContinue: (req) => {
            continued = true;
            req.end(body);
          },
        },
      );
      t.diagnostic(
        `100-continue: informational ${JSON.stringify(cont.informational)}, 'continue' seen ${continued}, final ${cont.status} ${cont.body}`,
      );
      assert.ok(continued, 'the 100 (Continue) reached the client');
      assert.equal(`${cont.status} ${cont.body}`, `200 got ${body.length}`);
    } finally {
      session.close();
    }
  });
});

test('idle timeout: a connection with a stream the upstream never answers is closed, and the upstream stream and the connection slot are freed', async (t) => {
  let upstreamClosed: Promise<void> | null = null;
  const handler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    req.resume();
    if (req.url === '/hang') {
      upstreamClosed = new Promise((r) => res.stream.on('close', () => r()));
      return;
    }
    res.end('ok');
  };
  await withRelay(
    handler,
    async (h) => {
      const session = connect(h);
      const closed = new Promise<void>((r) => session.on('close', () => r()));
      const t0 = performance.now();
      const hung = request(session, { ':path': '/hang' });
      const outcome = await Promise.race([closed.then(() => 'closed'), giveUp(5000).then(() => 'still open')]);
      const ms = performance.now() - t0;
      t.diagnostic(`idle 800 ms: the agent connection ${outcome} after ${ms.toFixed(0)} ms`);
      assert.equal(outcome, 'closed');
      const r = await hung;
      assert.equal(r.ended, false, 'the held stream did not end as a success');
      assert.ok(upstreamClosed, 'the request reached the upstream');
      const up = await Promise.race([(upstreamClosed as Promise<void>).then(() => true), giveUp(2000).then(() => false)]);
      assert.ok(up, 'the upstream stream was closed too');
      assert.equal(await h.settled(), 0, 'no connection left open in the dataplane');
      const s2 = connect(h);
      const again = await request(s2, { ':path': '/after' });
      assert.equal(`${again.status} ${again.body}`, '200 ok');
      s2.close();
    },
    {
      config: (c) => {
        c.proxy.idle_timeout_ms = 800;
      },
    },
  );
});

test('an upstream answering before the upload ends, then RST_STREAM NO_ERROR (RFC 9113 §8.1): the agent gets the whole answer and the upload stops', async (t) => {
  const handler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    res.writeHead(413, { 'content-type': 'text/plain' });
    res.end('too large');
    // The complete response, then "the rest of the request is not wanted". (Closed on 'finish' itself,
    // node:http2 sends the RST_STREAM before the DATA that ends the response: an incomplete one.)
    res.stream.on('finish', () => setTimeout(() => req.stream.close(http2.constants.NGHTTP2_NO_ERROR), 20));
  };
  await withRelay(handler, async (h) => {
    const session = connect(h);
    try {
      const body = producer(20 * MB);
      const t0 = performance.now();
      const r = await Promise.race([
        request(session, { ':method': 'POST', ':path': '/api/early', 'content-type': 'application/octet-stream' }, body.stream),
        giveUp(10_000),
      ]);
      assert.ok(r, 'the request does not hang');
      t.diagnostic(
        `early 413: ${r.status} '${r.body}', rst ${r.rstCode}, error ${r.error}, the client produced ${(body.produced() / MB).toFixed(1)} MB of 20 in ${(performance.now() - t0).toFixed(0)} ms`,
      );
      assert.equal(`${r.status} ${r.body}`, '413 too large');
      assert.ok(r.error === null, 'not reported as a failure');
      assert.equal(r.rstCode, http2.constants.NGHTTP2_NO_ERROR, 'the upload is stopped with NO_ERROR');
      const again = await request(
        session,
        { ':method': 'POST', ':path': '/api/again', 'content-type': 'application/octet-stream' },
        Buffer.from('x'),
      );
      assert.equal(`${again.status} ${again.body}`, '413 too large', 'the connection goes on');
    } finally {
      session.close();
    }
  });
});

test('SETTINGS deadline: an upstream that agrees h2 and never speaks it fails the stream (REFUSED_STREAM, GOAWAY, audited)', async (t) => {
  // TLS with ALPN h2 completes; not one HTTP/2 byte follows.
  const silent = tls.createServer({ key: cert.keyPem, cert: cert.certPem, ALPNProtocols: ['h2'] }, (s) => {
    s.on('error', () => undefined);
    s.resume();
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const port = (silent.address() as { port: number }).port;
  // The deadline is the idle timeout when shorter than SETTINGS_DEADLINE_MS.
  const h = await harnessFor(port, (c) => {
    c.proxy.idle_timeout_ms = 1000;
  });
  try {
    const session = connect(h);
    const goaway = new Promise<number>((r) => session.on('goaway', (code) => r(code)));
    const t0 = performance.now();
    const r = await Promise.race([request(session, { ':path': '/silent' }), giveUp(5000)]);
    const ms = performance.now() - t0;
    t.diagnostic(`silent upstream: rst ${r?.rstCode} error ${r?.error} after ${ms.toFixed(0)} ms`);
    assert.ok(r, 'the request does not hang');
    assert.equal(r.status, 0, 'no response');
    assert.equal(r.rstCode, http2.constants.NGHTTP2_REFUSED_STREAM);
    assert.ok(ms >= 900 && ms < 3000, `failed at the deadline (${ms.toFixed(0)} ms)`);
    assert.equal(await goaway, http2.constants.NGHTTP2_NO_ERROR);
    session.close();
    const failed = (await h.events()).filter((e) => e.decision === 'deny').map((e) => e.reason);
    assert.deepEqual(failed, ['upstream HTTP/2 connection failed: the server SETTINGS not received within 1000 ms']);
    assert.equal(await h.settled(), 0);
  } finally {
    await h.close();
    await new Promise<void>((r) => silent.close(() => r()));
  }
});

test('SETTINGS deadline: an agent that completes TLS (ALPN h2) and never sends its preface is closed at the deadline, audited', async (t) => {
  const h1 = (_req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => res.end('ok');
  await withRelay(
    h1,
    async (h) => {
      const quiet = tls.connect({ port: h.proxy.port, host: '127.0.0.1', servername: 'localhost', ca: ca.certPem, ALPNProtocols: ['h2'] });
      quiet.on('error', () => undefined);
      await new Promise<void>((r) => quiet.once('secureConnect', () => r()));
      assert.equal(quiet.alpnProtocol, 'h2');
      const q0 = performance.now();
      let got = Buffer.alloc(0);
      quiet.on('data', (d: Buffer) => (got = Buffer.concat([got, d])));
      const closed = await Promise.race([new Promise<boolean>((r) => quiet.once('close', () => r(true))), giveUp(5000)]);
      const qms = performance.now() - q0;
      t.diagnostic(`silent agent: closed after ${qms.toFixed(0)} ms, ${got.length} bytes back`);
      assert.ok(closed, 'the silent agent was closed');
      assert.ok(qms < 3000, `closed at the deadline (${qms.toFixed(0)} ms)`);
      const reasons = (await h.events()).map((e) => e.reason ?? '');
      assert.ok(
        reasons.includes('malformed request: the client preface and SETTINGS not received within 1000 ms'),
        JSON.stringify(reasons),
      );
      assert.equal(await h.settled(), 0);
    },
    {
      config: (c) => {
        c.proxy.idle_timeout_ms = 1000;
      },
    },
  );
});

test('an early answer larger than the agent window, read late: the agent gets all of it, then RST_STREAM NO_ERROR stops its upload', async (t) => {
  const answer = Buffer.alloc(60 * 1024, 0x61);
  const handler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    res.writeHead(413, { 'content-type': 'application/octet-stream' });
    res.end(answer);
    res.stream.on('finish', () => setTimeout(() => req.stream.close(http2.constants.NGHTTP2_NO_ERROR), 20));
  };
  await withRelay(handler, async (h) => {
    for (let round = 0; round < 5; round++) {
      // A 16 KiB stream window, read 100 ms late: the relay holds most of the answer until the agent
      // reads, and must send the RST_STREAM NO_ERROR only after the answer's last byte.
      const session = http2.connect(`https://localhost:${h.proxy.port}`, { ca: ca.certPem, settings: { initialWindowSize: 16384 } });
      session.on('error', () => undefined);
      const body = producer(1024 * MB);
      try {
        const req = session.request({ ':method': 'POST', ':path': '/api/early-big', 'content-type': 'application/octet-stream' });
        req.on('error', () => undefined);
        const chunks: Buffer[] = [];
        let status = 0;
        req.on('response', (hd) => {
          status = Number(hd[STATUS]);
          req.pause();
          setTimeout(() => req.resume(), 100);
        });
        req.on('data', (d: Buffer) => chunks.push(d));
        body.stream.pipe(req);
        // Node's client leaves a stream reset with NO_ERROR undestroyed while a pipe still writes to
        // it (no 'close'): its state is what tells.
        const t0 = performance.now();
        while (!(req.closed && chunks.reduce((n, c) => n + c.length, 0) === answer.length) && performance.now() - t0 < 10_000)
          await sleep(20);
        const got = Buffer.concat(chunks);
        t.diagnostic(
          `round ${round}: ${status}, ${got.length} bytes, rst ${req.rstCode}, uploaded ${(body.produced() / MB).toFixed(1)} MB`,
        );
        assert.ok(req.closed, `round ${round}: the stream was closed (ended ${req.readableEnded})`);
        assert.equal(status, 413);
        assert.ok(got.equals(answer), `round ${round}: the whole answer (${got.length} bytes)`);
        assert.equal(req.rstCode, http2.constants.NGHTTP2_NO_ERROR, 'the upload is stopped with NO_ERROR');
        assert.ok(body.produced() < 256 * MB, 'the upload stopped');
      } finally {
        body.stream.destroy();
        session.destroy();
      }
    }
  });
});
