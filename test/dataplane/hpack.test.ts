// The HPACK codec against nghttp2 (node:http2) on both sides of a connection: our
// decoder reads what nghttp2 encodes (requests and responses, dynamic table,
// Huffman, CONTINUATION), nghttp2 reads what our encoder writes, and hostile blocks
// (bad indexes, integers, strings, Huffman, table updates, an HPACK bomb) are refused
// with the right code. The Huffman table is checked to be a complete canonical code.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { once } from 'node:events';
import { HpackDecoder, HpackError, HpackFieldEncoder, encodeHpack, type HeaderField } from '../../enforcer/dataplane/protocols/hpack.js';
import {
  HUFFMAN_BITS,
  HUFFMAN_CODES,
  HUFFMAN_EOS,
  huffmanDecode,
  huffmanMaxDecodedLength,
} from '../../enforcer/dataplane/protocols/hpack-huffman.js';
import { frame as h2Frame, H2_PREFACE } from '../../testkit/h2-wire.js';

const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const FRAME_HEADERS = 0x1;
const FRAME_SETTINGS = 0x4;
const FRAME_CONTINUATION = 0x9;
const FLAG_ACK = 0x1;
const FLAG_END_STREAM = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;

// ---------------------------------------------------------------------------------------------
// Test-side wire helpers: a frame reader that joins HEADERS + CONTINUATION into header blocks,
// a Huffman encoder built from the RFC table, and HPACK integer/string writers for crafted blocks.

interface HeaderBlock {
  stream: number;
  block: Buffer;
}

/** Reads frames from a byte stream (after an optional preface) and collects complete header blocks. */
class HeaderBlockReader {
  #buf = Buffer.alloc(0);
  #prefacePending: boolean;
  #open: { stream: number; parts: Buffer[] } | null = null;
  readonly blocks: HeaderBlock[] = [];
  #waiters: Array<{ count: number; resolve: () => void }> = [];

  constructor(
    expectPreface: boolean,
    readonly onSettings: () => void,
  ) {
    this.#prefacePending = expectPreface;
  }

  push(chunk: Buffer): void {
    this.#buf = Buffer.concat([this.#buf, chunk]);
    if (this.#prefacePending) {
      if (this.#buf.length < H2_PREFACE.length) return;
      assert.ok(this.#buf.subarray(0, H2_PREFACE.length).equals(H2_PREFACE), 'client preface');
      this.#buf = this.#buf.subarray(H2_PREFACE.length);
      this.#prefacePending = false;
    }
    while (this.#buf.length >= 9) {
      const len = this.#buf.readUIntBE(0, 3);
      if (this.#buf.length < 9 + len) break;
      const type = this.#buf[3];
      const flags = this.#buf[4];
      const stream = this.#buf.readUInt32BE(5) & 0x7fffffff;
      let payload = this.#buf.subarray(9, 9 + len);
      this.#buf = this.#buf.subarray(9 + len);
      if (type === FRAME_SETTINGS && (flags & FLAG_ACK) === 0) this.onSettings();
      if (type === FRAME_HEADERS) {
        assert.equal(this.#open, null, 'HEADERS inside an open header block');
        if (flags & FLAG_PADDED) payload = payload.subarray(1, payload.length - payload[0]);
        if (flags & FLAG_PRIORITY) payload = payload.subarray(5);
        this.#open = { stream, parts: [payload] };
      } else if (type === FRAME_CONTINUATION) {
        assert.ok(this.#open !== null && this.#open.stream === stream, 'CONTINUATION without its HEADERS');
        this.#open.parts.push(payload);
      } else continue;
      if (flags & FLAG_END_HEADERS) {
        const open = this.#open!;
        this.blocks.push({ stream: open.stream, block: Buffer.concat(open.parts) });
        this.#open = null;
        for (const w of this.#waiters.filter((w) => this.blocks.length >= w.count)) w.resolve();
        this.#waiters = this.#waiters.filter((w) => this.blocks.length < w.count);
      }
    }
  }

  /** Resolves once `count` header blocks have arrived. */
  waitFor(count: number): Promise<void> {
    if (this.blocks.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ count, resolve }));
  }
}

/** RFC 7541 §5.2 Huffman encoding of the symbols, padded with the EOS prefix (or `padding` bits as given). */
function huffmanEncode(symbols: ArrayLike<number>, padding?: { bits: number; value: number }): Buffer {
  const out: number[] = [];
  let acc = 0n;
  let n = 0;
  const put = (code: number, bits: number) => {
    acc = (acc << BigInt(bits)) | BigInt(code);
    n += bits;
    while (n >= 8) {
      out.push(Number((acc >> BigInt(n - 8)) & 0xffn));
      n -= 8;
    }
  };
  for (let i = 0; i < symbols.length; i++) put(HUFFMAN_CODES[symbols[i]], HUFFMAN_BITS[symbols[i]]);
  if (padding) put(padding.value, padding.bits);
  else if (n > 0) put((1 << (8 - n)) - 1, 8 - n);
  assert.equal(n, 0, 'crafted Huffman string ends on a byte boundary');
  return Buffer.from(out);
}

/** An HPACK integer (§5.1) with `flags` in the first byte's high bits. */
function int(flags: number, prefixBits: number, value: number): number[] {
  const mask = (1 << prefixBits) - 1;
  if (value < mask) return [flags | value];
  const out = [flags | mask];
  let rest = value - mask;
  while (rest >= 128) {
    out.push((rest % 128) | 0x80);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return out;
}

/** A raw (non-Huffman) string literal. */
function str(s: string): number[] {
  return [...int(0, 7, s.length), ...Buffer.from(s, 'latin1')];
}

function decodeFails(block: Buffer | number[], code: HpackError['code'], message: RegExp, decoder = new HpackDecoder(), max = 65536): void {
  assert.throws(
    () => decoder.decode(Buffer.from(block), max),
    (e: unknown) => e instanceof HpackError && e.code === code && message.test(e.message),
  );
}

// ---------------------------------------------------------------------------------------------
// The Huffman table and its decoder.

test('the Huffman table (RFC 7541 Appendix B) is a complete canonical prefix code over 257 symbols', () => {
  assert.equal(HUFFMAN_CODES.length, 257);
  assert.equal(HUFFMAN_BITS.length, 257);
  // Kraft: Σ 2^-len == 1 exactly, in integers over the longest length (30 bits).
  let kraft = 0;
  for (const bits of HUFFMAN_BITS) kraft += 2 ** (30 - bits);
  assert.equal(kraft, 2 ** 30);
  // Canonical: ordered by (length, symbol), each code is the previous plus one, shifted to its length.
  // This also checks each code fits its length and no code is a prefix of another.
  const order = [...HUFFMAN_BITS.keys()].sort((a, b) => HUFFMAN_BITS[a] - HUFFMAN_BITS[b] || a - b);
  let code = 0;
  let prev = HUFFMAN_BITS[order[0]];
  for (const [i, sym] of order.entries()) {
    if (i > 0) code = (code + 1) * 2 ** (HUFFMAN_BITS[sym] - prev);
    prev = HUFFMAN_BITS[sym];
    assert.equal(HUFFMAN_CODES[sym], code, `code of symbol ${sym}`);
  }
  // Spot checks against the RFC's printed rows.
  assert.deepEqual([HUFFMAN_CODES[0x20], HUFFMAN_BITS[0x20]], [0x14, 6]);
  assert.deepEqual([HUFFMAN_CODES[0x61], HUFFMAN_BITS[0x61]], [0x3, 5]);
  assert.deepEqual([HUFFMAN_CODES[HUFFMAN_EOS], HUFFMAN_BITS[HUFFMAN_EOS]], [0x3fffffff, 30]);
});

test('Huffman round trip: every byte value, alone and in a string of all 256', () => {
  const out = Buffer.alloc(4096);
  for (let b = 0; b < 256; b++) {
    const enc = huffmanEncode([b]);
    const n = huffmanDecode(enc, 0, enc.length, out);
    assert.equal(n, 1, `byte ${b}`);
    assert.equal(out[0], b);
  }
  const all = Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 37) % 256));
  const enc = huffmanEncode(all);
  assert.ok(huffmanMaxDecodedLength(enc.length) >= all.length);
  const n = huffmanDecode(enc, 0, enc.length, out);
  assert.deepEqual(out.subarray(0, n), all);
  assert.equal(huffmanDecode(Buffer.alloc(0), 0, 0, out), 0, 'the empty string');
});

test('RFC 7541 C.4: the three Huffman request examples on one decoder', () => {
  const d = new HpackDecoder();
  const auth: HeaderField = [':authority', 'www.example.com'];
  assert.deepEqual(d.decode(Buffer.from('828684418cf1e3c2e5f23a6ba0ab90f4ff', 'hex'), 4096), [
    [':method', 'GET'],
    [':scheme', 'http'],
    [':path', '/'],
    auth,
  ]);
  assert.deepEqual(d.decode(Buffer.from('828684be5886a8eb10649cbf', 'hex'), 4096), [
    [':method', 'GET'],
    [':scheme', 'http'],
    [':path', '/'],
    auth,
    ['cache-control', 'no-cache'],
  ]);
  assert.deepEqual(d.decode(Buffer.from('828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf', 'hex'), 4096), [
    [':method', 'GET'],
    [':scheme', 'https'],
    [':path', '/index.html'],
    auth,
    ['custom-key', 'custom-value'],
  ]);
});

// ---------------------------------------------------------------------------------------------
// Decoding what nghttp2 encodes.

/** A plain TCP server speaking just enough HTTP/2 to receive requests: SETTINGS, SETTINGS ack, then listens. */
async function rawH2Server(settings: Buffer = Buffer.alloc(0)): Promise<{ port: number; reader: Promise<HeaderBlockReader> }> {
  let resolveReader!: (r: HeaderBlockReader) => void;
  const reader = new Promise<HeaderBlockReader>((r) => (resolveReader = r));
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.write(h2Frame(FRAME_SETTINGS, 0, 0, settings));
    const r = new HeaderBlockReader(true, () => socket.write(h2Frame(FRAME_SETTINGS, FLAG_ACK, 0, Buffer.alloc(0))));
    socket.on('data', (chunk: Buffer) => r.push(chunk));
    resolveReader(r);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { port: (server.address() as net.AddressInfo).port, reader };
}

/** The fields Node sends for a headers object: keys in order, an array value as one field per element. */
function expectedFields(headers: Record<string, string | string[]>): HeaderField[] {
  const out: HeaderField[] = [];
  for (const [name, value] of Object.entries(headers)) {
    for (const v of Array.isArray(value) ? value : [value]) out.push([name, v]);
  }
  return out;
}

const LATIN1_HIGH = String.fromCharCode(...Array.from({ length: 0x7f }, (_, i) => 0x80 + i)) + '\u00ff';
const VISIBLE_ASCII = String.fromCharCode(...Array.from({ length: 0x7e - 0x21 + 1 }, (_, i) => 0x21 + i));

test('decodes nghttp2 request header blocks across one session (dynamic table, eviction, Huffman, CONTINUATION)', async () => {
  const { port, reader } = await rawH2Server();
  const client = http2.connect(`http://127.0.0.1:${port}`);
  client.on('error', () => {});
  cleanups.push(() => client.destroy());

  const authority = `127.0.0.1:${port}`;
  const requests: Array<Record<string, string | string[]>> = [];
  const base = (method: string, path: string) => ({ ':method': method, ':scheme': 'http', ':authority': authority, ':path': path });
  requests.push({ ...base('GET', '/'), 'user-agent': 'lilith-test/1.0', accept: '*/*' });
  // The same fields again: nghttp2 now refers to its dynamic table.
  requests.push({ ...base('GET', '/'), 'user-agent': 'lilith-test/1.0', accept: '*/*' });
  requests.push({
    ...base('POST', '/api/v1/items?filter=a%20b&sort=-created'),
    'content-type': 'application/json; charset=utf-8',
    authorization: 'Bearer eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhZ2VudC0xIn0.c2lnbmF0dXJl',
    cookie: ['session=abc123', 'theme=dark', 'csrf=Zm9vYmFy'],
    'x-repeated': ['one', 'two', 'three'],
    'x-latin1': `caf\u00e9 ${LATIN1_HIGH}`,
    'x-visible': `${VISIBLE_ASCII} with spaces inside`,
  });
  // Many distinct fields: far beyond the 4096-byte table, so nghttp2 evicts as it indexes.
  for (let r = 0; r < 6; r++) {
    const h: Record<string, string | string[]> = base('GET', `/many/${r}`);
    for (let i = 0; i < 40; i++) h[`x-field-${r}-${i}`] = `value number ${i} of request ${r}: ${'abcdefghij'.repeat(1 + (i % 5))}`;
    requests.push(h);
  }
  // One block larger than a frame (16384): nghttp2 sends HEADERS + CONTINUATION.
  requests.push({ ...base('PUT', '/big'), 'x-big': 'Z'.repeat(20000), 'x-after-big': 'tail' });
  // And an earlier request again after all the churn.
  requests.push({ ...base('GET', '/'), 'user-agent': 'lilith-test/1.0', accept: '*/*' });

  for (const h of requests) {
    const s = client.request(h, { endStream: true });
    s.on('error', () => {});
  }
  const r = await reader;
  await r.waitFor(requests.length);

  const decoder = new HpackDecoder(4096);
  let sawContinuation = false;
  for (const [i, h] of requests.entries()) {
    const { block, stream } = r.blocks[i];
    assert.equal(stream, 1 + 2 * i);
    if (block.length > 16384) sawContinuation = true;
    assert.deepEqual(decoder.decode(block, 1024 * 1024), expectedFields(h), `request ${i}`);
  }
  assert.ok(sawContinuation, 'one block spanned HEADERS + CONTINUATION');
  // nghttp2 used the dynamic table (the repeated request is tiny) and Huffman (a raw 'lilith-test/1.0' would be in the block).
  assert.ok(r.blocks[1].block.length < 12, `second identical request is all indexed (${r.blocks[1].block.length} bytes)`);
  assert.equal(r.blocks[0].block.indexOf('lilith-test'), -1, 'user-agent was Huffman-coded');
});

test('a smaller advertised table: nghttp2 signals the size update, the decoder follows it and caps it', async () => {
  const SETTINGS_HEADER_TABLE_SIZE = 0x1;
  const settings = Buffer.alloc(6);
  settings.writeUInt16BE(SETTINGS_HEADER_TABLE_SIZE, 0);
  settings.writeUInt32BE(256, 2);
  const { port, reader } = await rawH2Server(settings);
  const client = http2.connect(`http://127.0.0.1:${port}`);
  client.on('error', () => {});
  cleanups.push(() => client.destroy());
  // Two equal 300-byte fields: indexed and referenced while nghttp2's table is still the initial 4096, literal once it is 256.
  const headers = {
    ':method': 'GET',
    ':scheme': 'http',
    ':authority': 'a.test',
    ':path': '/',
    'x-dup': ['v'.repeat(300), 'v'.repeat(300)],
  };
  client.request(headers, { endStream: true }).on('error', () => {});
  const r = await reader;
  await r.waitFor(1);
  if (client.remoteSettings?.headerTableSize !== 256) await once(client, 'remoteSettings');
  client.request(headers, { endStream: true }).on('error', () => {});
  await r.waitFor(2);
  const decoder = new HpackDecoder(256);
  for (const { block } of r.blocks) assert.deepEqual(decoder.decode(block, 65536), expectedFields(headers));
  const startsWithUpdate = r.blocks.map(({ block }) => block[0] >= 0x20 && block[0] < 0x40);
  assert.ok(startsWithUpdate.includes(true), 'nghttp2 sent a dynamic table size update');
  // Our encoder never indexes, so no update is needed on our side; a peer going above 256 is refused.
  decodeFails(int(0x20, 5, 257), 'HPACK_DECODE', /above the advertised 256/, new HpackDecoder(256));
});

test('decodes nghttp2 response header blocks (Node http2 server, h2c)', async () => {
  const responses: Array<Record<string, string | string[]>> = [
    { ':status': '200', 'content-type': 'text/plain', date: 'Tue, 01 Jul 2025 10:00:00 GMT' },
    {
      ':status': '404',
      'set-cookie': ['a=1; Path=/; HttpOnly', 'b=2; Secure', `c=${'x'.repeat(300)}`],
      'x-latin1': LATIN1_HIGH,
      'cache-control': 'no-store',
      date: 'Tue, 01 Jul 2025 10:00:01 GMT',
    },
    { ':status': '200', 'content-type': 'text/plain', date: 'Tue, 01 Jul 2025 10:00:00 GMT' },
    { ':status': '503', 'retry-after': '120', 'x-visible': `${VISIBLE_ASCII} and more`, date: 'Tue, 01 Jul 2025 10:00:02 GMT' },
  ];
  let next = 0;
  const server = http2.createServer();
  server.on('stream', (stream) => {
    stream.respond(responses[next++], { endStream: true });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => sessions.add(s));
  cleanups.push(() => {
    for (const s of sessions) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });

  const socket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  socket.on('error', () => {});
  cleanups.push(() => socket.destroy());
  await once(socket, 'connect');
  const reader = new HeaderBlockReader(false, () => socket.write(h2Frame(FRAME_SETTINGS, FLAG_ACK, 0, Buffer.alloc(0))));
  socket.on('data', (chunk: Buffer) => reader.push(chunk));
  socket.write(Buffer.concat([H2_PREFACE, h2Frame(FRAME_SETTINGS, 0, 0, Buffer.alloc(0))]));
  // One request at a time, so the responses arrive in order.
  for (let i = 0; i < responses.length; i++) {
    const req = encodeHpack([
      [':method', 'GET'],
      [':scheme', 'http'],
      [':authority', 'example.test'],
      [':path', `/r/${i}`],
    ]);
    socket.write(h2Frame(FRAME_HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 1 + 2 * i, req));
    await reader.waitFor(i + 1);
  }
  const decoder = new HpackDecoder();
  for (const [i, h] of responses.entries()) {
    assert.deepEqual(decoder.decode(reader.blocks[i].block, 65536), expectedFields(h), `response ${i}`);
  }
});

// ---------------------------------------------------------------------------------------------
// nghttp2 decoding what we encode.

test('nghttp2 reads encodeHpack blocks exactly, never-indexed fields marked sensitive', async () => {
  const seen: Array<{ raw: string[]; sensitive: string[] }> = [];
  const server = http2.createServer();
  server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => {
    seen.push({ raw: rawHeaders, sensitive: [...((headers as any)[http2.sensitiveHeaders] ?? [])] });
    stream.respond({ ':status': 204 }, { endStream: true });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => sessions.add(s));
  cleanups.push(() => {
    for (const s of sessions) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });

  const longName = `x-${'long-name-'.repeat(30)}end`;
  const sensitive = new Set(['authorization', 'cookie', 'x-secret']);
  const blocks: HeaderField[][] = [
    [
      [':method', 'GET'],
      [':scheme', 'https'],
      [':path', '/'],
      [':authority', 'api.example.com'],
      ['accept-encoding', 'gzip, deflate'],
      ['user-agent', 'lilith'],
    ],
    [
      [':method', 'POST'],
      [':scheme', 'http'],
      [':path', '/index.html'],
      [':authority', 'api.example.com:8443'],
      ['x-visible', `${VISIBLE_ASCII} ${VISIBLE_ASCII}`],
      [longName, 'v'.repeat(300)],
      ['authorization', 'Bearer secret-token'],
      ['cookie', 'a=1'],
      ['cookie', 'b=2'],
      ['x-secret', 'hidden'],
      ['x-latin1', `caf\u00e9 ${LATIN1_HIGH}`],
      ['content-type', 'application/grpc'],
      ['te', 'trailers'],
    ],
    [
      [':method', 'DELETE'],
      [':scheme', 'https'],
      [':path', `/${'p'.repeat(5000)}`],
      [':authority', 'example.com'],
      ['x-empty', ''],
      ['accept', ''],
    ],
  ];
  const encoded = blocks.map((fields) => encodeHpack(fields, sensitive));
  // Static exact matches are one byte each: :method GET (2), :scheme https (7), :path / (4), accept-encoding gzip, deflate (16).
  assert.deepEqual([...encoded[0].subarray(0, 3)], [0x82, 0x87, 0x84]);
  assert.ok(encoded[0].includes(0x90), 'accept-encoding: gzip, deflate indexed');
  // A static name with another value: literal without indexing, indexed name (:authority = 1).
  assert.equal(encoded[0][3], 0x01);

  const socket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  socket.on('error', () => {});
  cleanups.push(() => socket.destroy());
  await once(socket, 'connect');
  const reader = new HeaderBlockReader(false, () => socket.write(h2Frame(FRAME_SETTINGS, FLAG_ACK, 0, Buffer.alloc(0))));
  socket.on('data', (chunk: Buffer) => reader.push(chunk));
  socket.write(Buffer.concat([H2_PREFACE, h2Frame(FRAME_SETTINGS, 0, 0, Buffer.alloc(0))]));
  for (const [i, block] of encoded.entries()) socket.write(h2Frame(FRAME_HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 1 + 2 * i, block));
  await reader.waitFor(encoded.length);

  assert.equal(seen.length, blocks.length);
  for (const [i, fields] of blocks.entries()) {
    assert.deepEqual(seen[i].raw, fields.flat(), `block ${i} as nghttp2 decoded it`);
  }
  assert.deepEqual(seen[0].sensitive, []);
  assert.deepEqual(new Set(seen[1].sensitive), sensitive, 'never-indexed fields arrive marked sensitive');
  // And our decoder reads our encoder (no dynamic table touched: one decoder for all).
  const d = new HpackDecoder(0);
  for (const [i, block] of encoded.entries()) assert.deepEqual(d.decode(block, 1 << 20), blocks[i]);
});

test('encodeHpack refuses characters with no field byte', () => {
  assert.throws(() => encodeHpack([['x-a', 'snow \u2603']]), /value of header "x-a" has a character above U\+00FF/);
  assert.throws(() => encodeHpack([['x-b', `${'v'.repeat(500)}\u2603`]]), /value of header "x-b"/);
  assert.throws(() => encodeHpack([['x-\u0100', 'v']]), RangeError);
});

// ---------------------------------------------------------------------------------------------
// Hostile blocks.

test('table size updates: above the advertised maximum, or after a field, are refused; at block start they apply', () => {
  decodeFails(int(0x20, 5, 4097), 'HPACK_DECODE', /size update to 4097, above the advertised 4096/);
  decodeFails(int(0x20, 5, 1), 'HPACK_DECODE', /above the advertised 0/, new HpackDecoder(0));
  decodeFails([0x82, ...int(0x20, 5, 0)], 'HPACK_DECODE', /size update after a header field/);
  // Two updates at the start are allowed (§4.2); shrinking to 0 evicts everything.
  const d = new HpackDecoder();
  assert.deepEqual(d.decode(Buffer.from([0x40, ...str('x-a'), ...str('1'), 0xbe]), 4096), [
    ['x-a', '1'],
    ['x-a', '1'],
  ]);
  assert.deepEqual(d.decode(Buffer.from([...int(0x20, 5, 0), ...int(0x20, 5, 4096), 0x82]), 4096), [[':method', 'GET']]);
  decodeFails([0xbe], 'HPACK_DECODE', /index 62 beyond the table \(61 static \+ 0 dynamic entries\)/, d);
});

test('indexes: 0 and beyond the table are refused, in indexed fields and indexed names', () => {
  decodeFails([0x80], 'HPACK_DECODE', /index 0 at byte 0/);
  decodeFails([0x82, 0xbe], 'HPACK_DECODE', /index 62 beyond the table/);
  decodeFails([...int(0x80, 7, 100000)], 'HPACK_DECODE', /index 100000 beyond/);
  decodeFails([...int(0x00, 4, 62), ...str('v')], 'HPACK_DECODE', /index 62 beyond/);
  decodeFails([...int(0x40, 6, 62), ...str('v')], 'HPACK_DECODE', /index 62 beyond/);
});

test('integers and strings that run past the block, or past 2^31, are refused', () => {
  decodeFails([0xff], 'HPACK_DECODE', /truncated integer/);
  decodeFails([0xff, 0x80], 'HPACK_DECODE', /truncated integer/);
  decodeFails([0xff, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00], 'HPACK_DECODE', /longer than 5 continuation bytes/);
  decodeFails([0xff, 0xff, 0xff, 0xff, 0xff, 0x0f], 'HPACK_DECODE', /integer above 2\^31-1/);
  decodeFails([0xff, ...int(0, 0, 2 ** 31).slice(1)], 'HPACK_DECODE', /integer above 2\^31-1/);
  decodeFails([0x00, 0x05, 0x61], 'HPACK_DECODE', /string of 5 bytes beyond the block's end/);
  decodeFails([0x00, 0x01, 0x61], 'HPACK_DECODE', /missing string literal/);
  decodeFails([0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0x07], 'HPACK_DECODE', /integer above 2\^31-1/);
  decodeFails([0x00, ...int(0x80, 7, 1000), 0x61], 'HPACK_DECODE', /string of 1000 bytes beyond/);
});

test('Huffman strings with EOS inside, or with padding too long or not all ones, are refused', () => {
  const lit = (h: Buffer) => [0x00, ...str('x-h'), ...int(0x80, 7, h.length), ...h];
  const ok = new HpackDecoder().decode(Buffer.from(lit(huffmanEncode(Buffer.from('abc')))), 4096);
  assert.deepEqual(ok, [['x-h', 'abc']]);
  // 'a' (5 bits) + EOS (30 bits) + 'a' (5 bits): 5 whole bytes.
  const eos = huffmanEncode([0x61, HUFFMAN_EOS, 0x61]);
  decodeFails(lit(eos), 'HPACK_DECODE', /invalid Huffman string/);
  decodeFails(lit(Buffer.from([0xff, 0xff, 0xff, 0xff])), 'HPACK_DECODE', /invalid Huffman string/);
  // 'a' + 11 one bits: padding longer than 7.
  decodeFails(lit(huffmanEncode([0x61], { bits: 11, value: 0x7ff })), 'HPACK_DECODE', /invalid Huffman string/);
  decodeFails(lit(Buffer.from([0xff])), 'HPACK_DECODE', /invalid Huffman string/);
  // 'a' + '000': padding not a prefix of EOS.
  decodeFails(lit(huffmanEncode([0x61], { bits: 3, value: 0 })), 'HPACK_DECODE', /invalid Huffman string/);
  decodeFails(lit(huffmanEncode([0x61], { bits: 3, value: 0b101 })), 'HPACK_DECODE', /invalid Huffman string/);
  // 'a' + '111' is the valid form of the same.
  assert.deepEqual(new HpackDecoder().decode(Buffer.from(lit(huffmanEncode([0x61], { bits: 3, value: 0b111 }))), 4096), [['x-h', 'a']]);
});

test('an HPACK bomb stops at the header list bound, not after building the list', () => {
  // One 4000-byte dynamic entry, then 10,000 one-byte references to it: ~40 MB of header list from ~14 KB.
  const block = Buffer.concat([
    Buffer.from([0x40, ...str('x-bomb'), ...int(0x00, 7, 4000)]),
    Buffer.alloc(4000, 0x61),
    Buffer.alloc(10000, 0xbe),
  ]);
  const entry = 'x-bomb'.length + 4000 + 32;
  const maxListBytes = 16384;
  let error: unknown;
  try {
    new HpackDecoder().decode(block, maxListBytes);
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof HpackError && error.code === 'HPACK_TOO_LARGE', String(error));
  // The field that crossed 16384 is the 4th reference: the error names its byte offset and the bound.
  const firstRef = block.length - 10000;
  const crossing = Math.floor(maxListBytes / entry); // fields that fit, the literal included
  assert.match(error.message, new RegExp(`larger than ${maxListBytes} bytes at byte ${firstRef + crossing - 1}$`));
});

test('a literal larger than the remaining bound is refused before it is materialised; the list size counts 32 per field', () => {
  decodeFails(
    [0x00, ...str('x-a'), ...int(0x00, 7, 20000), ...Buffer.alloc(20000, 0x62)],
    'HPACK_TOO_LARGE',
    /larger than 16384 bytes at byte 5/,
    undefined,
    16384,
  );
  // Exactly at the bound is allowed; one byte more is not.
  const fields = Buffer.from([0x00, ...str('x-a'), ...str('bc')]);
  assert.deepEqual(new HpackDecoder().decode(fields, 3 + 2 + 32), [['x-a', 'bc']]);
  decodeFails(fields, 'HPACK_TOO_LARGE', /larger than 36 bytes/, undefined, 36);
  decodeFails([0x82], 'HPACK_TOO_LARGE', /larger than 38 bytes/, undefined, 38);
  // A Huffman value counts its decoded length.
  const h = huffmanEncode(Buffer.from('aaaaaaaa')); // 8 chars in 5 bytes
  const huff = Buffer.from([0x00, ...str('x-a'), ...int(0x80, 7, h.length), ...h]);
  assert.deepEqual(new HpackDecoder().decode(huff, 3 + 8 + 32), [['x-a', 'aaaaaaaa']]);
  decodeFails(huff, 'HPACK_TOO_LARGE', /larger than 42 bytes/, undefined, 42);
});

test('after an error the decoder refuses every later block; bad arguments are named', () => {
  const d = new HpackDecoder();
  assert.throws(() => d.decode(Buffer.from([0x80]), 4096), HpackError);
  decodeFails([0x82], 'HPACK_DECODE', /decoder unusable after an earlier decoding error/, d);
  assert.throws(() => new HpackDecoder().decode(Buffer.from([0x82]), -1), /maxListBytes must be a non-negative integer, got -1/);
  assert.throws(() => new HpackDecoder(-5), /maxTableSize must be an integer in 0\.\.2147483647, got -5/);
});

test('dynamic table: eviction by size, an entry larger than the table empties it, returned tuples are the caller’s own', () => {
  const d = new HpackDecoder(100);
  // Each entry: 3 + 5 + 32 = 40 bytes; two fit in 100 (the peer shrinks the table from the initial 4096 first).
  const add = (v: string) => [0x40, ...str('x-a'), ...str(v)];
  const to = (size: number) => int(0x20, 5, size);
  assert.deepEqual(d.decode(Buffer.from([...to(100), ...add('11111'), ...add('22222'), ...add('33333'), 0xbe, 0xbf]), 4096).slice(3), [
    ['x-a', '33333'],
    ['x-a', '22222'],
  ]);
  decodeFails([0xc0], 'HPACK_DECODE', /index 64 beyond the table \(61 static \+ 2 dynamic entries\)/, d);
  const e = new HpackDecoder(100);
  e.decode(Buffer.from([...to(100), ...add('11111'), 0x40, ...str('x-b'), ...str('v'.repeat(70))]), 4096);
  decodeFails([0xbe], 'HPACK_DECODE', /61 static \+ 0 dynamic entries/, e);
  // Mutating a returned field changes nothing the decoder keeps.
  const f = new HpackDecoder();
  const first = f.decode(Buffer.from([0x82, ...add('keep')]), 4096);
  first[0][1] = 'POST';
  first[1][1] = 'changed';
  assert.deepEqual(f.decode(Buffer.from([0x82, 0xbe]), 4096), [
    [':method', 'GET'],
    ['x-a', 'keep'],
  ]);
  // Many blocks through a small table: the eviction bookkeeping stays consistent.
  const g = new HpackDecoder(200);
  for (let i = 0; i < 500; i++) {
    const v = `v${i}`;
    assert.deepEqual(g.decode(Buffer.from([...(i === 0 ? to(200) : []), ...add(v), 0xbe]), 4096), [
      ['x-a', v],
      ['x-a', v],
    ]);
  }
});

test("HpackFieldEncoder gives exactly encodeHpack's bytes over a connection of repeated, changing, long and sensitive fields", () => {
  const sensitive = new Set(['authorization', 'cookie']);
  const enc = new HpackFieldEncoder(sensitive);
  let seed = 7;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const values = ['', 'a', 'GET', 'POST', '/x', '/y?z=1', 'x'.repeat(300), 'text/plain', 'caf\u00e9', 'trailers'];
  const names = [':method', ':path', ':status', 'content-type', 'cookie', 'authorization', 'x-custom', 'te', 'user-agent'];
  for (let i = 0; i < 2000; i++) {
    const fields: HeaderField[] = [];
    const n = rand(8);
    for (let k = 0; k < n; k++) fields.push([names[rand(names.length)], values[rand(values.length)]]);
    assert.deepEqual(enc.encode(fields), encodeHpack(fields, sensitive), JSON.stringify(fields));
  }
  // More distinct names than the cache keeps: still exact.
  const many: HeaderField[] = Array.from({ length: 100 }, (_, i) => [`x-field-${i}`, `v${i}`]);
  assert.deepEqual(enc.encode(many), encodeHpack(many, sensitive));
  assert.deepEqual(enc.encode(many), encodeHpack(many, sensitive));
});
