// Wire-level HTTP/2 attacks on the intercepting dataplane (ALPN h2 inside the node
// CA's TLS), with a real node:http2 upstream recording what reaches it. Each attack
// pins what the agent sees (RST_STREAM with the RFC's code on that stream, or GOAWAY
// and close), that nothing of the malformed stream reached the upstream, and that
// the proxy serves on (the same connection after a stream error, a new one after a
// connection error). Where RFC 9113 allows a stream or a connection error, either is
// accepted and the one seen is written as a test diagnostic. The client is
// testkit/h2-wire.ts: it sends exactly the bytes built here.
import { test, after, before, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHarness, loopback, type Harness } from './helpers.js';
import { makeCert, rmCert, startH2Upstream, type TestCert, type Upstream } from './tls-upstreams.js';
import { InterceptionCa } from '../../enforcer/dataplane/tls/ca.js';
import {
  errorCodeOf,
  FLAG,
  frame,
  FRAME,
  type Frame,
  H2_ERROR,
  H2Wire,
  hpackIndexed,
  hpackIndexedLiteral,
  hpackLiteral,
  requestFields,
  SETTING,
  settingsPayload,
  u32,
} from '../../testkit/h2-wire.js';

let cert: TestCert;
let ca: InterceptionCa;
let caDir: string;
let up: Upstream;
let h: Harness;

before(async () => {
  cert = makeCert('localhost');
  caDir = await mkdtemp(join(tmpdir(), 'lilith-ca-'));
  ca = await InterceptionCa.open(join(caDir, 'ca'));
  up = await startH2Upstream(cert);
  h = await startHarness({
    destination: loopback(up.port),
    tweaks: {
      config: (c) => {
        c.upstreams.up = { address: `127.0.0.1:${up.port}`, kind: 'tls', ca: cert.certPem };
      },
    },
    extra: { ca },
  });
});
after(async () => {
  await h.close();
  await up.close();
  rmCert(cert);
  await rm(caDir, { recursive: true, force: true });
});

const CODE_NAMES = Object.fromEntries(Object.entries(H2_ERROR).map(([k, v]) => [v, k]));
const codeName = (code: number) => CODE_NAMES[code] ?? `0x${code.toString(16)}`;

const open = () => H2Wire.connect({ port: h.proxy.port, ca: ca.certPem });

/** Paths of the well-formed follow-up requests: the only ones an attack test may leave upstream. */
const AFTER = '/after-';

/** Where the upstream's arrivals stand now: what an attack adds after it is judged by `untouched`. */
const mark = () => up.arrivals.length;

/** Nothing but the follow-up GETs reached the upstream since `from`. */
function untouched(from: number, label: string): void {
  const extra = up.arrivals.slice(from).filter((a) => !a.url.startsWith(AFTER) && !a.url.startsWith(`/api${AFTER}`));
  assert.deepEqual(
    extra.map((a) => `${a.method} ${a.url}`),
    [],
    `${label}: the upstream saw a request of the attack stream`,
  );
}

/** A well-formed GET is answered 200 by the upstream: on `c` (stream `stream`) when it is still open, else on a new connection. */
async function servesOn(c: H2Wire, stream: number, label: string): Promise<void> {
  const path = `${AFTER}${label.replace(/[^a-z0-9]+/gi, '-')}`;
  let conn = c;
  if (c.goaway() || c.closed) {
    conn = await open();
    stream = 1;
  }
  try {
    const r = await conn.get(stream, path);
    assert.deepEqual(r, { status: 200, body: `2.0 GET ${path}` }, `${label}: the proxy serves on (${conn.trace()})`);
    assert.ok(
      up.requests.some((q) => q.url === path),
      `${label}: the follow-up reached the upstream`,
    );
  } finally {
    if (conn !== c) conn.destroy();
  }
}

type Refusal = { kind: 'stream' | 'connection'; code: number; frame: Frame };

/** What the upstream saw of requests to paths other than the follow-ups since `from`: method, path and the fields beyond the usual ones. */
function leakedSince(from: number): string {
  const usual = new Set([':method', ':path', ':scheme', ':authority', 'content-type', 'content-length', 'user-agent']);
  const seen = up.arrivals.slice(from).filter((a) => !a.url.startsWith(AFTER));
  const shown = seen
    .slice(0, 5)
    .map((a) => [a.method, a.url, Object.fromEntries(Object.entries(a.headers).filter(([n]) => !usual.has(n)))]);
  return `${JSON.stringify(shown)}${seen.length > 5 ? ` and ${seen.length - 5} more` : ''}`;
}

/** The RST_STREAM on `stream` or the GOAWAY the attack drew; written as a diagnostic. Fails, saying what went upstream, when the stream was answered or nothing came. */
async function refusalOf(t: TestContext, c: H2Wire, stream: number, label: string, from = mark()): Promise<Refusal> {
  const f = await c.waitFor(
    (x) =>
      (x.type === FRAME.RST_STREAM && x.stream === stream) ||
      x.type === FRAME.GOAWAY ||
      (x.stream === stream && (x.flags & FLAG.END_STREAM) !== 0),
    2500,
  );
  if (!f || (f.type !== FRAME.RST_STREAM && f.type !== FRAME.GOAWAY)) {
    const what = `${f ? 'answered' : 'no answer, no refusal'} (saw: ${c.trace() || 'nothing'}; closed ${c.closed}); upstream saw ${leakedSince(from)}`;
    t.diagnostic(`${label}: NOT refused: ${what}`);
    assert.fail(`${label}: neither RST_STREAM on stream ${stream} nor GOAWAY: ${what}`);
  }
  const kind = f.type === FRAME.GOAWAY ? 'connection' : 'stream';
  const code = errorCodeOf(f);
  t.diagnostic(`${label}: ${kind} error ${codeName(code)}`);
  return { kind, code, frame: f };
}

/**
 * A malformed request (RFC 9113 §8.1.1): a stream error PROTOCOL_ERROR (a connection error is
 * allowed too, §5.4.1), nothing upstream, and the proxy serving on.
 */
async function expectMalformed(
  t: TestContext,
  label: string,
  attack: (c: H2Wire) => Promise<unknown>,
  opts: { stream?: number; next?: number } = {},
): Promise<Refusal> {
  const from = mark();
  const c = await open();
  try {
    await attack(c);
    const r = await refusalOf(t, c, opts.stream ?? 1, label, from);
    untouched(from, label);
    assert.equal(codeName(r.code), 'PROTOCOL_ERROR', `${label}: ${c.trace()}`);
    if (r.kind === 'connection') assert.ok(await c.waitClosed(1000), `${label}: the connection ends after GOAWAY`);
    await servesOn(c, opts.next ?? 3, label);
    untouched(from, label);
    return r;
  } finally {
    c.destroy();
  }
}

/** A connection error (RFC 9113 §5.4.1): GOAWAY with `code`, the connection closed, nothing upstream, a new connection served. */
async function expectConnectionError(t: TestContext, label: string, code: number, attack: (c: H2Wire) => Promise<unknown>): Promise<void> {
  const from = mark();
  const c = await open();
  try {
    await attack(c);
    const g = await c.waitFor((f) => f.type === FRAME.GOAWAY, 2500);
    assert.ok(g, `${label}: no GOAWAY (saw: ${c.trace() || 'nothing'}; closed ${c.closed})`);
    t.diagnostic(`${label}: GOAWAY ${codeName(errorCodeOf(g))}`);
    const closed = await c.waitClosed(1000);
    t.diagnostic(`${label}: closed by the proxy within 1 s after GOAWAY: ${closed}`);
    untouched(from, label);
    assert.equal(codeName(errorCodeOf(g)), codeName(code), `${label}: ${c.trace()}`);
    // RFC 9113 §5.4.1: after a GOAWAY for an error condition the endpoint MUST close the TCP connection.
    assert.ok(closed, `${label}: the connection ends after GOAWAY`);
    await servesOn(c, 1, label);
    untouched(from, label);
  } finally {
    c.destroy();
  }
}

// ---------------------------------------------------------------------------------
// Field validity (RFC 9113 §8.2, §8.2.1): a request carrying a field that breaks the
// rules is malformed; an intermediary MUST NOT forward it (§8.1.1).

const MALFORMED_FIELDS: Array<{ name: string; rfc: string; extra: Array<[string, string]> }> = [
  { name: 'uppercase field name', rfc: '§8.2.1 (names MUST be lowercase; §8.2)', extra: [['X-Upper', 'a']] },
  { name: 'field name with a space', rfc: '§8.2.1 (no 0x00-0x20 in names)', extra: [['x bad', 'a']] },
  {
    name: 'field name with a colon inside',
    rfc: '§8.2.1 (no ":" in names; §8.3 pseudo-headers only at the start)',
    extra: [['x:bad', 'a']],
  },
  {
    name: 'field value with CR LF (header injection)',
    rfc: '§8.2.1 (no NUL, CR or LF in values)',
    extra: [['x', 'a\r\ntransfer-encoding: chunked']],
  },
  { name: 'field value with a lone LF', rfc: '§8.2.1', extra: [['x', 'a\nhost: evil.example']] },
  { name: 'field value with NUL', rfc: '§8.2.1', extra: [['x', 'a\0b']] },
  { name: 'field value with leading whitespace', rfc: '§8.2.1 (no leading/trailing SP or HTAB)', extra: [['x', ' a']] },
  { name: 'field value with trailing whitespace', rfc: '§8.2.1', extra: [['x', 'a\t']] },
];

for (const m of MALFORMED_FIELDS) {
  test(`malformed field: ${m.name} → RST_STREAM PROTOCOL_ERROR, nothing upstream, the session serves on`, async (t) => {
    // RFC 9113 ${m.rfc}; §8.1.1 malformed → stream error PROTOCOL_ERROR, never forwarded.
    await expectMalformed(t, m.name, (c) => c.headers(1, requestFields('/attack-field', m.extra)));
  });
}

// Connection-specific fields (RFC 9113 §8.2.2): a request with any of them is malformed;
// te only as "trailers". The property kept even by an implementation that drops them: the
// upstream never receives them. The RFC's stream error is asserted too.
const CONNECTION_SPECIFIC: Array<[string, string]> = [
  ['connection', 'close'],
  ['transfer-encoding', 'chunked'],
  ['upgrade', 'websocket'],
  ['keep-alive', 'timeout=5'],
  ['proxy-connection', 'keep-alive'],
  ['te', 'gzip'],
];

for (const [name, value] of CONNECTION_SPECIFIC) {
  test(`connection-specific field ${name}: ${value} → refused (PROTOCOL_ERROR) and never reaches the upstream`, async (t) => {
    // RFC 9113 §8.2.2: connection-specific fields make the request malformed (te: only "trailers").
    const from = mark();
    const path = `/attack-conn-${name}`;
    const c = await open();
    try {
      await c.headers(1, requestFields(path, [[name, value]]));
      const r = await c.refusal(1, 3000);
      // The security property first: whatever the proxy did, the field never went upstream.
      const leaked = up.arrivals.slice(from).filter((a) => a.headers[name] !== undefined);
      assert.deepEqual(
        leaked.map((a) => `${a.url} ${name}: ${String(a.headers[name])}`),
        [],
        `${name} reached the upstream`,
      );
      const forwarded = up.arrivals.slice(from).some((a) => a.url === path);
      t.diagnostic(
        r
          ? `${name}: ${r.type === FRAME.GOAWAY ? 'connection' : 'stream'} error ${codeName(errorCodeOf(r))}`
          : `${name}: not refused; forwarded without the field: ${forwarded}`,
      );
      assert.ok(
        r,
        `${name}: the request is malformed and must be refused, not relayed without the field (forwarded: ${forwarded}; ${c.trace()})`,
      );
      assert.equal(codeName(errorCodeOf(r)), 'PROTOCOL_ERROR');
      if (r.type === FRAME.GOAWAY) assert.ok(await c.waitClosed(1000));
      await servesOn(c, 3, `conn-${name}`);
      untouched(from, name);
    } finally {
      c.destroy();
    }
  });
}

// ---------------------------------------------------------------------------------
// Pseudo-headers (RFC 9113 §8.3, §8.3.1).

const PSEUDO: Array<{ name: string; rfc: string; fields: Array<[string, string]> }> = [
  {
    name: 'pseudo-header after a regular field',
    rfc: '§8.3 (all pseudo-headers MUST precede regular fields)',
    fields: [
      [':method', 'GET'],
      [':scheme', 'https'],
      ['x-a', '1'],
      [':path', '/attack-order'],
      [':authority', 'localhost'],
    ],
  },
  {
    name: 'duplicated :path',
    rfc: '§8.3.1 (:path exactly once)',
    fields: [
      [':method', 'GET'],
      [':scheme', 'https'],
      [':path', '/attack-dup'],
      [':path', '/attack-dup-2'],
      [':authority', 'localhost'],
    ],
  },
  {
    name: 'unknown pseudo-header :foo',
    rfc: '§8.3 (undefined pseudo-headers MUST NOT appear)',
    fields: [...requestFields('/attack-foo'), [':foo', 'bar']],
  },
  { name: 'empty :path', rfc: '§8.3.1 (:path MUST NOT be empty for http/https)', fields: requestFields('') },
  { name: ':path not starting with /', rfc: '§8.3.1 (origin-form, or * for OPTIONS)', fields: requestFields('attack-relative') },
  { name: ':path * on a GET', rfc: '§8.3.1 (* only for OPTIONS)', fields: requestFields('*') },
  {
    name: 'missing :method',
    rfc: '§8.3.1 (MUST include exactly one :method, :scheme, :path)',
    fields: requestFields('/attack-nomethod').filter(([n]) => n !== ':method'),
  },
  { name: 'missing :scheme', rfc: '§8.3.1', fields: requestFields('/attack-noscheme').filter(([n]) => n !== ':scheme') },
  { name: 'missing :path', rfc: '§8.3.1', fields: requestFields('/x').filter(([n]) => n !== ':path') },
  {
    name: 'response pseudo-header :status in a request',
    rfc: '§8.3 (response pseudo-headers MUST NOT appear in requests)',
    fields: [...requestFields('/attack-status').slice(0, 4), [':status', '200']],
  },
];

for (const p of PSEUDO) {
  test(`pseudo-headers: ${p.name} → RST_STREAM PROTOCOL_ERROR, nothing upstream, the session serves on`, async (t) => {
    // RFC 9113 ${p.rfc}; §8.1.1 malformed.
    await expectMalformed(t, p.name, (c) => c.headers(1, p.fields));
  });
}

// ---------------------------------------------------------------------------------
// Content-length (RFC 9113 §8.1.1): a request whose DATA disagrees with its
// content-length is malformed. Non-JSON bodies are streamed, so the head may already be
// upstream: the property is that the upstream never gets a complete request whose body
// differs from its content-length, nor more bytes than it declared.

function noLengthLie(from: number, path: string): void {
  for (const a of up.arrivals.slice(from).filter((x) => x.url === path)) {
    const cl = Number(a.headers['content-length']);
    assert.ok(a.bodyBytes <= cl, `${path}: the upstream got ${a.bodyBytes} body bytes for content-length ${cl}`);
    assert.ok(
      !a.ended || a.bodyBytes === cl,
      `${path}: the upstream got a complete request of ${a.bodyBytes} bytes for content-length ${cl}`,
    );
  }
}

// RFC 9113 §8.1.1: a content-length not equal to the sum of the DATA payload lengths is malformed.
const LENGTH_LIES = [
  { lie: 'more', what: 'more DATA than declared', declared: '5', body: '{"a":"0123456789"}' },
  { lie: 'less', what: 'END_STREAM with less DATA than declared', declared: '100', body: '{"a":1}' },
] as const;

for (const [name, ct] of [
  ['text', 'text/plain'],
  ['held JSON', 'application/json'],
] as const) {
  for (const { lie, what, declared, body } of LENGTH_LIES) {
    test(`content-length: ${what} (${name} body) → RST_STREAM PROTOCOL_ERROR, no request upstream whose body disagrees with its length`, async (t) => {
      const from = mark();
      const path = `/api/attack-cl-${lie}-${name.replace(' ', '-')}`;
      const c = await open();
      try {
        await c.headers(
          1,
          requestFields(
            path,
            [
              ['content-type', ct],
              ['content-length', declared],
            ],
            'POST',
          ),
          false,
        );
        await c.send(FRAME.DATA, FLAG.END_STREAM, 1, Buffer.from(body));
        const r = await refusalOf(t, c, 1, `cl-${lie} ${name}`, from);
        assert.equal(codeName(r.code), 'PROTOCOL_ERROR');
        await servesOn(c, 3, `cl-${lie}-${name}`);
        noLengthLie(from, path);
      } finally {
        c.destroy();
      }
    });
  }
}

// ---------------------------------------------------------------------------------
// Stream identifiers and states (RFC 9113 §5.1, §5.1.1).

test('DATA on a stream never opened (idle) → GOAWAY PROTOCOL_ERROR', async (t) => {
  // RFC 9113 §5.1: a frame other than HEADERS/PRIORITY on an idle stream is a connection error PROTOCOL_ERROR.
  await expectConnectionError(t, 'DATA on idle stream', H2_ERROR.PROTOCOL_ERROR, (c) =>
    c.send(FRAME.DATA, FLAG.END_STREAM, 7, Buffer.from('orphan')),
  );
});

test('HEADERS on an even stream id → GOAWAY PROTOCOL_ERROR', async (t) => {
  // RFC 9113 §5.1.1: client streams are odd; an unexpected stream identifier is a connection error PROTOCOL_ERROR.
  await expectConnectionError(t, 'HEADERS on stream 2', H2_ERROR.PROTOCOL_ERROR, (c) => c.headers(2, requestFields('/attack-even')));
});

test('a new stream id lower than an earlier one → GOAWAY PROTOCOL_ERROR, the lower stream not relayed', async (t) => {
  // RFC 9113 §5.1.1: a new stream id MUST be greater than all the client opened; else connection error PROTOCOL_ERROR.
  const from = mark();
  const c = await open();
  try {
    const first = await c.get(5, `${AFTER}lower-first`);
    assert.deepEqual(first, { status: 200, body: `2.0 GET ${AFTER}lower-first` });
    await c.headers(3, requestFields('/attack-lower'));
    const g = await c.waitFor((f) => f.type === FRAME.GOAWAY, 2500);
    assert.ok(g, `no GOAWAY (${c.trace()})`);
    t.diagnostic(`lower stream id: GOAWAY ${codeName(errorCodeOf(g))}`);
    assert.equal(codeName(errorCodeOf(g)), 'PROTOCOL_ERROR');
    assert.ok(await c.waitClosed(1000));
    await servesOn(c, 1, 'lower');
    untouched(from, 'lower stream id');
  } finally {
    c.destroy();
  }
});

// ---------------------------------------------------------------------------------
// CONTINUATION (RFC 9113 §6.10) and header list limits (§10.5.1; CVE-2024-27316 class).

test('CONTINUATION flood past the header limit → GOAWAY and close, quickly; nothing upstream', async (t) => {
  // RFC 9113 §6.10, §10.5.1: a field block larger than the endpoint handles may end the connection; it must not be held unbounded.
  const from = mark();
  const c = await open();
  try {
    const started = Date.now();
    await c.send(FRAME.HEADERS, FLAG.END_STREAM, 1, hpackLiteral(requestFields('/attack-continuation')));
    // 1 KiB per CONTINUATION, 256 of them: 256 KiB of field block against a 32 KiB limit, never END_HEADERS.
    const chunk = hpackLiteral([['x-pad', 'a'.repeat(1000)]]);
    let sent = 0;
    for (; sent < 256 && !c.closed; sent++) if (!(await c.send(FRAME.CONTINUATION, 0, 1, chunk))) break;
    assert.ok(await c.waitClosed(5000), `the connection is closed (sent ${sent} CONTINUATIONs; ${c.trace()})`);
    const g = c.goaway();
    assert.ok(g, `GOAWAY before the close (${c.trace()})`);
    t.diagnostic(`CONTINUATION flood: GOAWAY ${codeName(errorCodeOf(g))} after ${sent} CONTINUATIONs, ${Date.now() - started} ms`);
    assert.notEqual(errorCodeOf(g), H2_ERROR.NO_ERROR);
    assert.ok(Date.now() - started < 5000, 'quickly');
    await servesOn(c, 1, 'continuation-flood');
    untouched(from, 'CONTINUATION flood');
  } finally {
    c.destroy();
  }
});

test('a CONTINUATION for another stream inside a header block → GOAWAY PROTOCOL_ERROR', async (t) => {
  // RFC 9113 §6.10: a frame of another type or on another stream before END_HEADERS is a connection error PROTOCOL_ERROR.
  await expectConnectionError(t, 'interleaved CONTINUATION', H2_ERROR.PROTOCOL_ERROR, async (c) => {
    await c.send(FRAME.HEADERS, FLAG.END_STREAM, 1, hpackLiteral(requestFields('/attack-interleave')));
    await c.send(FRAME.CONTINUATION, FLAG.END_HEADERS, 3, hpackLiteral([['x-b', '2']]));
  });
});

test('a DATA frame inside a header block → GOAWAY PROTOCOL_ERROR', async (t) => {
  // RFC 9113 §6.10 (a frame of another type before END_HEADERS).
  await expectConnectionError(t, 'DATA inside header block', H2_ERROR.PROTOCOL_ERROR, async (c) => {
    await c.send(FRAME.HEADERS, 0, 1, hpackLiteral(requestFields('/api/attack-interleave-data', [['content-length', '2']], 'POST')));
    await c.send(FRAME.DATA, FLAG.END_STREAM, 1, Buffer.from('hi'));
  });
});

// ---------------------------------------------------------------------------------
// HPACK (RFC 7541 §4.2, §7.3; RFC 9113 §10.5.1): a small block expanding to a huge list.

test('HPACK bomb: a ~4 KB dynamic entry referenced thousands of times → refused, the upstream untouched, the proxy alive', async (t) => {
  // RFC 7541 §7.3 (memory of decoded lists); RFC 9113 §10.5.1 (header list size limits).
  const from = mark();
  const c = await open();
  try {
    const rss0 = process.memoryUsage().rss;
    const block = Buffer.concat([
      hpackLiteral(requestFields('/attack-bomb')),
      hpackIndexedLiteral('x-bomb', 'b'.repeat(4000)),
      ...Array.from({ length: 8000 }, () => hpackIndexed(62)),
    ]);
    assert.ok(block.length < 16384, 'one frame within the default SETTINGS_MAX_FRAME_SIZE');
    await c.send(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, block);
    const r = await refusalOf(t, c, 1, 'HPACK bomb');
    assert.notEqual(r.code, H2_ERROR.NO_ERROR);
    if (r.kind === 'connection') assert.ok(await c.waitClosed(1000));
    const grew = (process.memoryUsage().rss - rss0) / 2 ** 20;
    t.diagnostic(`HPACK bomb: rss +${grew.toFixed(1)} MiB`);
    await servesOn(c, 3, 'hpack-bomb');
    untouched(from, 'HPACK bomb');
  } finally {
    c.destroy();
  }
});

test('an HPACK index beyond the tables → GOAWAY COMPRESSION_ERROR', async (t) => {
  // RFC 7541 §2.3.3: an index greater than the table sizes MUST be treated as a decoding error; RFC 9113 §4.3 → COMPRESSION_ERROR.
  await expectConnectionError(t, 'bad HPACK index', H2_ERROR.COMPRESSION_ERROR, (c) =>
    c.send(
      FRAME.HEADERS,
      FLAG.END_HEADERS | FLAG.END_STREAM,
      1,
      Buffer.concat([hpackLiteral(requestFields('/attack-index')), hpackIndexed(200)]),
    ),
  );
});

// ---------------------------------------------------------------------------------
// Frame size (RFC 9113 §4.2).

test('a HEADERS frame bigger than the advertised SETTINGS_MAX_FRAME_SIZE → GOAWAY FRAME_SIZE_ERROR', async (t) => {
  // RFC 9113 §4.2: a frame over SETTINGS_MAX_FRAME_SIZE is FRAME_SIZE_ERROR; one carrying a field block, a connection error.
  await expectConnectionError(t, 'oversized frame', H2_ERROR.FRAME_SIZE_ERROR, async (c) => {
    const max = c.peerSettings.get(SETTING.MAX_FRAME_SIZE) ?? 16384;
    const block = Buffer.concat([hpackLiteral(requestFields('/attack-frame-size')), hpackLiteral([['x-big', 'c'.repeat(max)]])]);
    assert.ok(block.length > max);
    await c.send(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, block);
  });
});

// ---------------------------------------------------------------------------------
// Flow control (RFC 9113 §6.9, §6.9.1).

test('WINDOW_UPDATE with increment 0 on the connection → GOAWAY PROTOCOL_ERROR', async (t) => {
  // RFC 9113 §6.9: increment 0 is PROTOCOL_ERROR; on the connection window, a connection error.
  await expectConnectionError(t, 'WINDOW_UPDATE 0 (connection)', H2_ERROR.PROTOCOL_ERROR, (c) => c.send(FRAME.WINDOW_UPDATE, 0, 0, u32(0)));
});

test('WINDOW_UPDATE with increment 0 on an open stream → RST_STREAM PROTOCOL_ERROR, no complete request upstream', async (t) => {
  // RFC 9113 §6.9: increment 0 on a stream is a stream error PROTOCOL_ERROR.
  const from = mark();
  const path = '/api/attack-wu0-stream';
  const c = await open();
  try {
    await c.headers(1, requestFields(path, [['content-type', 'text/plain']], 'POST'), false);
    await c.send(FRAME.WINDOW_UPDATE, 0, 1, u32(0));
    const r = await refusalOf(t, c, 1, 'WINDOW_UPDATE 0 (stream)', from);
    assert.equal(codeName(r.code), 'PROTOCOL_ERROR');
    await servesOn(c, 3, 'wu0-stream');
    assert.ok(!up.arrivals.slice(from).some((a) => a.url === path && a.ended), 'no complete request upstream');
  } finally {
    c.destroy();
  }
});

test('WINDOW_UPDATE overflowing the connection window past 2^31-1 → GOAWAY FLOW_CONTROL_ERROR', async (t) => {
  // RFC 9113 §6.9.1: a window above 2^31-1 is a connection error FLOW_CONTROL_ERROR (on the connection window).
  await expectConnectionError(t, 'window overflow', H2_ERROR.FLOW_CONTROL_ERROR, (c) => c.send(FRAME.WINDOW_UPDATE, 0, 0, u32(0x7fffffff)));
});

test('WINDOW_UPDATE overflowing a stream window → RST_STREAM FLOW_CONTROL_ERROR', async (t) => {
  // RFC 9113 §6.9.1: on a stream window, a stream error FLOW_CONTROL_ERROR (a connection error allowed, §5.4.1).
  const from = mark();
  const path = '/api/attack-wu-overflow-stream';
  const c = await open();
  try {
    await c.headers(1, requestFields(path, [['content-type', 'text/plain']], 'POST'), false);
    await c.send(FRAME.WINDOW_UPDATE, 0, 1, u32(0x7fffffff));
    const r = await refusalOf(t, c, 1, 'stream window overflow', from);
    assert.equal(codeName(r.code), 'FLOW_CONTROL_ERROR');
    if (r.kind === 'connection') assert.ok(await c.waitClosed(1000));
    await servesOn(c, 3, 'wu-overflow-stream');
    assert.ok(!up.arrivals.slice(from).some((a) => a.url === path && a.ended), 'no complete request upstream');
  } finally {
    c.destroy();
  }
});

// ---------------------------------------------------------------------------------
// Floods (RFC 9113 §10.5: PING, SETTINGS and the like "can be used to create excessive
// processing"; an endpoint MAY treat the abuse as ENHANCE_YOUR_CALM). The proxy must not
// buffer unboundedly the answers a client does not read.

/** Writes `count` copies of `one` without reading; resolves once all are written, the proxy closed, or 5 s passed. */
async function flood(c: H2Wire, one: Buffer, count: number): Promise<number> {
  c.pause();
  const batch = Buffer.concat(Array.from({ length: 1000 }, () => one));
  let written = 0;
  const deadline = Date.now() + 5000;
  while (written < count && !c.closed && Date.now() < deadline) {
    const ok = await Promise.race([c.write(batch), new Promise<boolean>((r) => setTimeout(() => r(false), deadline - Date.now()))]);
    if (!ok) break;
    written += 1000;
  }
  return written;
}

async function floodBounded(t: TestContext, label: string, one: Buffer, count: number): Promise<void> {
  const from = mark();
  const rss0 = process.memoryUsage().rss;
  const c = await open();
  try {
    const written = await flood(c, one, count);
    const closed = await c.waitClosed(1000);
    const grew = (process.memoryUsage().rss - rss0) / 2 ** 20;
    t.diagnostic(`${label}: wrote ${written}, closed by the proxy ${closed}, rss +${grew.toFixed(1)} MiB`);
    assert.ok(closed || grew < 50, `${label}: the proxy neither closed the connection nor kept its memory (+${grew.toFixed(1)} MiB)`);
  } finally {
    c.destroy();
  }
  await servesOn(await open(), 1, label);
  untouched(from, label);
}

test('PING flood while not reading (50,000 PINGs) → closed or bounded; a new connection is served', async (t) => {
  // RFC 9113 §6.7, §10.5.
  await floodBounded(t, 'PING flood', frame(FRAME.PING, 0, 0, Buffer.alloc(8)), 50_000);
});

test('SETTINGS flood while not reading (20,000 SETTINGS) → closed or bounded; a new connection is served', async (t) => {
  // RFC 9113 §6.5, §10.5.
  const one = frame(FRAME.SETTINGS, 0, 0, settingsPayload([[SETTING.INITIAL_WINDOW_SIZE, 65535]]));
  await floodBounded(t, 'SETTINGS flood', one, 20_000);
});

// ---------------------------------------------------------------------------------
// Concurrency (RFC 9113 §5.1.2).

test('streams beyond SETTINGS_MAX_CONCURRENT_STREAMS (100) → refused (REFUSED_STREAM or PROTOCOL_ERROR), not relayed', async (t) => {
  // RFC 9113 §5.1.2: a HEADERS exceeding the advertised limit is a stream error PROTOCOL_ERROR or REFUSED_STREAM.
  const from = mark();
  const c = await open();
  try {
    assert.equal(c.peerSettings.get(SETTING.MAX_CONCURRENT_STREAMS), 100, 'the proxy advertises 100');
    // Our ACK of the proxy's SETTINGS goes first: the limit binds from then on.
    await new Promise((r) => setTimeout(r, 50));
    // 100 POSTs left open (no END_STREAM): each holds a slot.
    const open100 = Array.from({ length: 100 }, (_, i) =>
      frame(
        FRAME.HEADERS,
        FLAG.END_HEADERS,
        1 + 2 * i,
        hpackLiteral(requestFields(`/api/attack-conc-${i}`, [['content-type', 'text/plain']], 'POST')),
      ),
    );
    await c.write(Buffer.concat(open100));
    const extra = [201, 203, 205];
    for (const s of extra)
      await c.headers(s, requestFields(`/api/attack-conc-extra-${s}`, [['content-type', 'text/plain']], 'POST'), false);
    const r = await refusalOf(t, c, 201, 'concurrency', from).finally(async () => {
      await new Promise((res) => setTimeout(res, 200));
      const open = up.arrivals.slice(from).filter((a) => a.url.startsWith('/api/attack-conc-'));
      t.diagnostic(
        `concurrency: ${open.length} open streams relayed, ${open.filter((a) => a.ended).length} of them completed upstream (never ended by the agent)`,
      );
    });
    assert.ok(['REFUSED_STREAM', 'PROTOCOL_ERROR'].includes(codeName(r.code)), codeName(r.code));
    if (r.kind === 'stream')
      for (const s of extra.slice(1)) {
        const rs = await c.refusal(s, 3000);
        assert.ok(rs, `stream ${s} refused too`);
      }
    // Let the relayed streams arrive; then none of the extra ones may be among them.
    await new Promise((res) => setTimeout(res, 300));
    const relayed = up.arrivals.slice(from).filter((a) => a.url.startsWith('/api/attack-conc-extra-'));
    assert.deepEqual(
      relayed.map((a) => a.url),
      [],
      'the streams beyond the limit reached the upstream',
    );
    if (r.kind === 'stream') {
      // Free one slot (one client reset, far below the rapid-reset threshold), then the session serves on.
      await c.send(FRAME.RST_STREAM, 0, 1, u32(H2_ERROR.CANCEL));
      await new Promise((res) => setTimeout(res, 100));
    }
    await servesOn(c, 207, 'concurrency');
  } finally {
    c.destroy();
  }
});

// ---------------------------------------------------------------------------------
// Padding (RFC 9113 §6.1, §6.2).

function padded(data: Buffer, pad: number): Buffer {
  return Buffer.concat([Buffer.from([pad]), data, Buffer.alloc(pad)]);
}

test('padded HEADERS whose pad length ≥ the frame payload → GOAWAY PROTOCOL_ERROR', async (t) => {
  // RFC 9113 §6.2: padding length ≥ payload length is a connection error PROTOCOL_ERROR.
  await expectConnectionError(t, 'HEADERS padding overrun', H2_ERROR.PROTOCOL_ERROR, async (c) => {
    const block = hpackLiteral(requestFields('/attack-pad-headers'));
    // Pad length 255 with fewer than 255 bytes after it.
    await c.send(
      FRAME.HEADERS,
      FLAG.END_HEADERS | FLAG.END_STREAM | FLAG.PADDED,
      1,
      Buffer.concat([Buffer.from([255]), block.subarray(0, 100)]),
    );
  });
});

test('padded DATA whose pad length ≥ the frame payload → GOAWAY PROTOCOL_ERROR, no complete request upstream', async (t) => {
  // RFC 9113 §6.1: padding length ≥ payload length is a connection error PROTOCOL_ERROR.
  const from = mark();
  const path = '/api/attack-pad-data';
  const c = await open();
  try {
    await c.headers(1, requestFields(path, [['content-type', 'text/plain']], 'POST'), false);
    await c.send(FRAME.DATA, FLAG.END_STREAM | FLAG.PADDED, 1, Buffer.from([10, 0x41, 0x42, 0x43]));
    const g = await c.waitFor((f) => f.type === FRAME.GOAWAY, 2500);
    assert.ok(g, `no GOAWAY (${c.trace()})`);
    t.diagnostic(`DATA padding overrun: GOAWAY ${codeName(errorCodeOf(g))}`);
    assert.equal(codeName(errorCodeOf(g)), 'PROTOCOL_ERROR');
    assert.ok(await c.waitClosed(1000));
    await servesOn(c, 1, 'pad-data');
    assert.ok(!up.arrivals.slice(from).some((a) => a.url === path && a.ended), 'no complete request upstream');
  } finally {
    c.destroy();
  }
});

test('a valid padded HEADERS and padded DATA are relayed without the padding (the upstream gets the exact body)', async () => {
  // RFC 9113 §6.1, §6.2: padding is not content; the upstream gets exactly the data.
  const path = `/api${AFTER}padded-ok`;
  const c = await open();
  try {
    const block = hpackLiteral(
      requestFields(
        path,
        [
          ['content-type', 'text/plain'],
          ['content-length', '5'],
        ],
        'POST',
      ),
    );
    await c.send(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.PADDED, 1, padded(block, 7));
    await c.send(FRAME.DATA, FLAG.PADDED, 1, padded(Buffer.from('he'), 20));
    await c.send(FRAME.DATA, FLAG.PADDED | FLAG.END_STREAM, 1, padded(Buffer.from('llo'), 255 - 3));
    const end = await c.waitFor(
      (f) => f.stream === 1 && (f.type === FRAME.RST_STREAM || ((f.flags & FLAG.END_STREAM) !== 0 && f.type === FRAME.DATA)),
      4000,
    );
    assert.ok(end && end.type === FRAME.DATA, `answered (${c.trace()})`);
    const got = up.requests.filter((q) => q.url === path);
    assert.deepEqual(
      got.map((q) => q.body),
      ['hello'],
    );
  } finally {
    c.destroy();
  }
});

// ---------------------------------------------------------------------------------
// PUSH_PROMISE and resets.

test('PUSH_PROMISE from the client → GOAWAY PROTOCOL_ERROR; the open request it rode on is not completed upstream', async (t) => {
  // RFC 9113 §8.4, §6.6: a client cannot push; a server receiving PUSH_PROMISE treats it as a connection error PROTOCOL_ERROR.
  const from = mark();
  const path = '/api/attack-push-parent';
  const c = await open();
  try {
    // The parent: a POST left open (its head may be upstream already: bodies are streamed).
    await c.headers(1, requestFields(path, [['content-type', 'text/plain']], 'POST'), false);
    await c.send(FRAME.DATA, 0, 1, Buffer.from('part of a body'));
    await new Promise((r) => setTimeout(r, 100));
    await c.send(FRAME.PUSH_PROMISE, FLAG.END_HEADERS, 1, Buffer.concat([u32(2), hpackLiteral(requestFields('/attack-pushed'))]));
    const g = await c.waitFor((f) => f.type === FRAME.GOAWAY, 2500);
    assert.ok(g, `no GOAWAY (${c.trace()})`);
    const closed = await c.waitClosed(1000);
    await new Promise((r) => setTimeout(r, 200));
    const parent = up.arrivals.slice(from).filter((a) => a.url === path);
    t.diagnostic(
      `client PUSH_PROMISE: GOAWAY ${codeName(errorCodeOf(g))}, closed ${closed}; upstream saw the parent as ${JSON.stringify(parent.map((a) => ({ bodyBytes: a.bodyBytes, ended: a.ended })))}`,
    );
    assert.ok(!up.arrivals.slice(from).some((a) => a.url === '/attack-pushed'), 'the promised request never went upstream');
    assert.ok(!parent.some((a) => a.ended), 'the unfinished parent request was completed upstream (a truncated body delivered as whole)');
    assert.equal(codeName(errorCodeOf(g)), 'PROTOCOL_ERROR');
    assert.ok(closed, 'the connection ends after GOAWAY');
    await servesOn(c, 1, 'push');
  } finally {
    c.destroy();
  }
});

// A reset stream's request is incomplete (RFC 9113 §6.4, §8.1): it MUST NOT be completed upstream.
// With a content-length the upstream's own HTTP/2 stack would notice a short body; without one,
// only the proxy stands between a truncated body and a "complete" request. A held body (JSON)
// goes upstream only once complete: of a reset stream, nothing at all may reach the upstream.
// (For streamed bodies the witness is the upstream seeing END_STREAM before any reset: when the
// proxy sends END_STREAM and then RST_STREAM at once, the upstream may see it as aborted.)
for (const [name, ct, cl] of [
  ['text with content-length', 'text/plain', '100'],
  ['text without content-length', 'text/plain', null],
  ['held JSON with content-length', 'application/json', '100'],
  ['held JSON without content-length', 'application/json', null],
] as const) {
  test(`a stream reset by the client mid-body (${name}): nothing of it reaches the upstream as a complete request; the session serves on`, async (t) => {
    // RFC 9113 §6.4 (RST_STREAM ends the stream), §8.1 (a request ends with END_STREAM).
    const from = mark();
    const path = `/api/attack-reset-mid-${name.replace(/ /g, '-')}`;
    const c = await open();
    try {
      await c.headers(
        1,
        requestFields(path, [['content-type', ct], ...(cl ? ([['content-length', cl]] as Array<[string, string]>) : [])], 'POST'),
        false,
      );
      await c.send(FRAME.DATA, 0, 1, Buffer.from('{"partial":"'.padEnd(50, 'x')));
      await new Promise((r) => setTimeout(r, 100));
      await c.send(FRAME.RST_STREAM, 0, 1, u32(H2_ERROR.CANCEL));
      await new Promise((r) => setTimeout(r, 200));
      await servesOn(c, 3, `reset-mid-${name}`);
      const seen = up.arrivals.slice(from).filter((a) => a.url === path);
      t.diagnostic(
        `reset mid-body (${name}): upstream saw ${JSON.stringify(seen.map((a) => ({ bodyBytes: a.bodyBytes, ended: a.ended })))}`,
      );
      assert.ok(!seen.some((a) => a.ended), `${name}: the partial request was completed upstream`);
      if (ct === 'application/json')
        assert.deepEqual(
          seen.map((a) => `${a.method} ${a.url} (${a.bodyBytes} body bytes)`),
          [],
          `${name}: the held body of a reset stream went upstream`,
        );
    } finally {
      c.destroy();
    }
  });
}

// The session ends under an open request (the agent's connection drops mid-body): the request is
// incomplete and MUST NOT be completed upstream either (RFC 9113 §8.1).
test('the agent connection dropped mid-body: the open request is not completed upstream', async (t) => {
  const from = mark();
  const path = '/api/attack-drop-mid';
  const c = await open();
  await c.headers(1, requestFields(path, [['content-type', 'text/plain']], 'POST'), false);
  await c.send(FRAME.DATA, 0, 1, Buffer.from('half of a body'));
  await new Promise((r) => setTimeout(r, 150));
  c.destroy();
  await new Promise((r) => setTimeout(r, 300));
  const seen = up.arrivals.slice(from).filter((a) => a.url === path);
  t.diagnostic(`dropped mid-body: upstream saw ${JSON.stringify(seen.map((a) => ({ bodyBytes: a.bodyBytes, ended: a.ended })))}`);
  assert.ok(!seen.some((a) => a.ended), 'the partial request was completed upstream');
});
