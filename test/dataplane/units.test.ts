// Pure pieces of the dataplane against real inputs: a ClientHello made by
// node's TLS client, chunked framing, SSE, DNS wire, detectors, masks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { parseClientHello } from '../../enforcer/dataplane/protocols/tls.js';
import {
  BodyTracker,
  ChunkedScanner,
  header,
  headerTokens,
  headerValues,
  parseRequestHead,
  requestFraming,
} from '../../enforcer/dataplane/protocols/http1.js';
import { SseParser, parseJsonRpc, classifyMessage } from '../../enforcer/dataplane/protocols/mcp.js';
import { canonicalJson, JsonExactError, parseJsonExact } from '../../enforcer/dataplane/protocols/json-exact.js';
import { detectProtocol } from '../../enforcer/dataplane/protocols/detect.js';
import { detect, luhnValid } from '../../enforcer/dataplane/taint/detectors.js';
import { labelsToMask, maskHex, maskLabels, maskToLabels, maskToLong } from '../../enforcer/dataplane/taint/mask.js';
import client from 'prom-client';
import { dataplaneMetrics, recordDecision } from '../../enforcer/dataplane/metrics.js';
import { TaintSessions } from '../../enforcer/dataplane/taint/sessions.js';
import { globToRegExp } from '../../enforcer/dataplane/taint/classify.js';
import { LearnedNames } from '../../enforcer/dataplane/dns/names.js';
import { sniAgainstDns } from '../../enforcer/dataplane/proxy/connection.js';
import { answerAddresses, buildQuery, errorResponse, parseQuery, readName } from '../../enforcer/dataplane/dns/wire.js';

async function realClientHello(servername: string, alpn: string[]): Promise<Buffer> {
  return new Promise((resolve) => {
    const server = net.createServer((s) => {
      s.once('data', (d) => {
        resolve(d);
        s.destroy();
        server.close();
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const c = tls.connect({
        port: (server.address() as net.AddressInfo).port,
        host: '127.0.0.1',
        servername,
        ALPNProtocols: alpn,
        rejectUnauthorized: false,
      });
      c.on('error', () => undefined);
    });
  });
}

test('ClientHello from node TLS: SNI and ALPN, also when fed one byte at a time', async () => {
  const hello = await realClientHello('API.GitHub.com', ['h2', 'http/1.1']);
  assert.equal(detectProtocol(hello), 'tls');
  const r = parseClientHello(hello);
  assert.equal(r.status, 'ok');
  if (r.status === 'ok') {
    assert.equal(r.hello.sni, 'api.github.com');
    assert.deepEqual(r.hello.alpn, ['h2', 'http/1.1']);
  }
  for (let i = 1; i < hello.length; i++) assert.equal(parseClientHello(hello.subarray(0, i)).status, 'need_more', `prefix ${i}`);
  // The same hello re-framed as two TLS records (a split handshake).
  const body = hello.subarray(5);
  const cut = 40;
  const rec = (b: Buffer) => Buffer.concat([Buffer.from([0x16, 0x03, 0x01, b.length >> 8, b.length & 0xff]), b]);
  const split = parseClientHello(Buffer.concat([rec(body.subarray(0, cut)), rec(body.subarray(cut))]));
  assert.equal(split.status === 'ok' && split.hello.sni, 'api.github.com');
  // Truncations and corruptions are named, never thrown.
  const bad = Buffer.from(hello);
  bad[5] = 0x02; // handshake type: ServerHello
  assert.equal(parseClientHello(bad).status, 'invalid');
});

test('chunked framing: end found across arbitrary splits, decoded data intact, malformed sizes rejected', () => {
  const wire = Buffer.from('4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: x\r\n\r\nNEXT');
  for (let step = 1; step <= 7; step++) {
    const out: Buffer[] = [];
    const sc = new ChunkedScanner((d) => out.push(Buffer.from(d)));
    let used = 0;
    for (let i = 0; i < wire.length && !sc.done; i += step) used += sc.push(wire.subarray(i, Math.min(wire.length, i + step)));
    assert.ok(sc.done);
    assert.equal(used, wire.length - 4);
    assert.equal(Buffer.concat(out).toString(), 'Wikipedia in\r\n\r\nchunks.');
  }
  assert.throws(() => new ChunkedScanner().push(Buffer.from('zz\r\n')), /chunk size/);
  assert.throws(() => new ChunkedScanner().push(Buffer.from('fffffffffffff\r\n')), /too large/);
  const t = new BodyTracker({ kind: 'length', length: 3 });
  assert.equal(t.take(Buffer.from('abcdef')), 3);
  assert.ok(t.done);
});

test('request heads: smuggling-prone forms are refused', () => {
  const head = (s: string) => parseRequestHead(Buffer.from(s), 1024);
  const ok = head('GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n');
  assert.equal(ok.kind, 'head');
  if (ok.kind === 'head') assert.deepEqual(requestFraming(ok.head), { kind: 'length', length: 5 });
  const dup = head('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n');
  assert.equal(dup.kind === 'head' && requestFraming(dup.head).kind, 'error');
  const te = head('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n');
  assert.equal(te.kind === 'head' && requestFraming(te.head).kind, 'error');
  assert.equal(head('GET / HTTP/1.1\nHost: a\r\n\r\n').kind, 'error');
  assert.equal(head('GET / HTTP/1.1\r\nHost : a\r\n\r\n').kind, 'error');
  assert.equal(parseRequestHead(Buffer.from('GET / HTTP/1.1\r\nX: ' + 'a'.repeat(2000)), 1024).kind, 'error');
});

test('request heads: header lookups are case-insensitive, keep every value in order, and split tokens', () => {
  const r = parseRequestHead(
    Buffer.from(
      'GET / HTTP/1.1\r\nHost: a\r\nACCEPT: text/html, Application/JSON\r\nX-Dup: 1\r\nx-dup: 2\r\nConnection: keep-alive,\r\n\r\n',
    ),
    1024,
  );
  assert.equal(r.kind, 'head');
  if (r.kind !== 'head') return;
  assert.equal(header(r.head, 'host'), 'a');
  assert.deepEqual(headerValues(r.head, 'x-dup'), ['1', '2']);
  assert.deepEqual(headerTokens(r.head, 'accept'), ['text/html', 'application/json']);
  assert.deepEqual(headerTokens(r.head, 'connection'), ['keep-alive'], 'empty tokens dropped');
  assert.deepEqual(headerValues(r.head, 'absent'), []);
  assert.equal(header(r.head, 'absent'), undefined);
  assert.deepEqual(
    r.head.headers.map(([n]) => n),
    ['Host', 'ACCEPT', 'X-Dup', 'x-dup', 'Connection'],
    'names as sent, in order',
  );
});

test('SSE events across chunk boundaries and line ending styles', () => {
  const events: string[] = [];
  const p = new SseParser((e) => events.push(`${e.event}:${e.data}`));
  const text = 'event: message\r\ndata: {"a":\r\ndata: 1}\r\n\r\n: comment\n\ndata: two\r\rdata:three\n\n';
  for (const ch of text) p.push(Buffer.from(ch));
  assert.deepEqual(events, ['message:{"a":\n1}', 'message:two', 'message:three']);
});

test('JSON-RPC classification', () => {
  const parsed = parseJsonRpc(
    '[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/x"}}},{"jsonrpc":"2.0","method":"notifications/initialized"}]',
  );
  assert.ok(parsed.ok);
  if (parsed.ok) {
    assert.deepEqual(classifyMessage(parsed.messages[0]), { kind: 'tool', tool: 'read_file', arguments: { path: '/x' } });
    assert.deepEqual(classifyMessage(parsed.messages[1]), { kind: 'session', method: 'notifications/initialized' });
  }
  assert.equal(parseJsonRpc('{"id":1}').ok, false);
  assert.equal(classifyMessage({ method: 'tools/call', params: { name: 'x', arguments: [1] } }).kind, 'invalid');
});

test('detectors: private keys, AWS keys, Luhn-valid card numbers, emails', () => {
  assert.ok(detect('private_key', 'x\n-----BEGIN RSA PRIVATE KEY-----\nMII'));
  assert.ok(!detect('private_key', '-----BEGIN PUBLIC KEY-----'));
  assert.ok(detect('aws_access_key', 'key=AKIAIOSFODNN7EXAMPLE;'));
  assert.ok(!detect('aws_access_key', 'AKIA-not-a-key'));
  assert.ok(luhnValid('4111111111111111'));
  assert.ok(detect('card_number', 'card 4111 1111 1111 1111 exp'));
  assert.ok(detect('card_number', '5500-0000-0000-0004'));
  assert.ok(!detect('card_number', 'order 4111111111111112'));
  assert.ok(!detect('card_number', '0000000000000000'));
  assert.ok(detect('email', 'write to alice.doe+x@corp.example.com'));
  assert.ok(!detect('email', 'user@localhost'));
});

test('taint masks: labels ↔ bits, hex, signed Long, monotonic sessions', () => {
  const table = { PII: 0, FINANCIAL: 1, TOP: 63 };
  const m = labelsToMask(['PII', 'TOP'], table);
  assert.equal(maskHex(m), '0x8000000000000001');
  assert.deepEqual(maskToLabels(m, table), ['PII', 'TOP']);
  assert.deepEqual(maskLabels(m, table), ['PII', 'TOP']);
  assert.equal(maskLabels(m, table), maskLabels(m, table), 'remembered per table and mask');
  assert.ok(Object.isFrozen(maskLabels(m, table)), 'the shared array cannot be changed by a caller');
  assert.deepEqual(maskLabels(m, { PII: 0 }), ['PII'], 'another table gets its own answer');
  assert.equal(maskHex(m), '0x8000000000000001', 'the remembered hex is the same');
  assert.equal(maskToLong(m), -9223372036854775807n, 'bit 63 is a negative Long, exact (a double says -2^63)');
  assert.equal(maskToLong(1n << 63n), -9223372036854775808n);
  assert.equal(maskToLong((1n << 53n) | 1n), 9007199254740993n, 'beyond 2^53: a BigInt, exact');
  assert.equal(maskToLong((1n << 52n) | 1n), 4503599627370497, 'within 2^53: a number');
  assert.equal(maskToLong(3n), 3);
  assert.throws(() => labelsToMask(['NOPE'], table), /unknown taint label/);
  const s = new TaintSessions();
  assert.deepEqual(s.or('a', 1n, 'sess'), { before: 0n, after: 1n });
  assert.deepEqual(s.or('a', 2n), { before: 1n, after: 3n });
  assert.deepEqual(s.or('a', 0n), { before: 3n, after: 3n });
  s.closeMcp('a', 'sess');
  assert.equal(s.mask('a'), 3n, 'closing an MCP session never clears the agent mask');
  assert.ok(globToRegExp('*/.ssh/*').test('/home/u/.ssh/id_rsa'));
  assert.ok(!globToRegExp('*/.ssh/*').test('/home/u/ssh/id'));
});

test('DNS wire: queries, compression loops, error responses, answers', () => {
  const q = buildQuery(7, 'Api.GitHub.com.', 28);
  const parsed = parseQuery(q);
  assert.equal(parsed.name, 'api.github.com');
  assert.equal(parsed.qtype, 28);
  const nx = errorResponse(q, parsed, 3);
  assert.equal(nx.readUInt16BE(2) & 0x800f, 0x8003);
  const loop = Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12]);
  assert.throws(() => parseQuery(loop), /loop/);
  assert.throws(() => readName(Buffer.from([5, 0x61]), 0), /past the end/);
  const resp = Buffer.concat([
    Buffer.from([0, 7, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0]),
    q.subarray(12),
    Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1]),
    Buffer.from([0xc0, 12, 0, 28, 0, 1, 0, 0, 0, 60, 0, 16, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
  ]);
  assert.deepEqual(answerAddresses(resp), ['10.0.0.1', '2001:db8::1']);
});

test('decision metrics: counts by protocol and result, cumulative latency buckets with +Inf, sum and count', async () => {
  dataplaneMetrics();
  const line = async (re: RegExp) => (await client.register.metrics()).split('\n').find((l) => re.test(l));
  const value = async (re: RegExp) => Number((await line(re))?.split(' ').pop());
  const before = {
    allow: (await value(/^lilith_decisions_total\{protocol="unit",decision="allow"\}/)) || 0,
    le25: (await value(/^lilith_decision_latency_seconds_bucket\{le="0\.000025",protocol="unit"\}/)) || 0,
    inf: (await value(/^lilith_decision_latency_seconds_bucket\{le="\+Inf",protocol="unit"\}/)) || 0,
  };
  recordDecision('unit', 'allow', 20e-6);
  recordDecision('unit', 'allow', 3e-3);
  recordDecision('unit', 'deny', 2); // beyond the last bucket: only +Inf and count
  assert.equal(await value(/^lilith_decisions_total\{protocol="unit",decision="allow"\}/), before.allow + 2);
  assert.equal(await value(/^lilith_decisions_total\{protocol="unit",decision="deny"\}/), 1);
  assert.equal(await value(/^lilith_decision_latency_seconds_bucket\{le="0\.00001",protocol="unit"\}/), 0);
  assert.equal(await value(/^lilith_decision_latency_seconds_bucket\{le="0\.000025",protocol="unit"\}/), before.le25 + 1);
  assert.equal(
    await value(/^lilith_decision_latency_seconds_bucket\{le="0\.005",protocol="unit"\}/),
    before.le25 + 2,
    'buckets are cumulative',
  );
  assert.equal(await value(/^lilith_decision_latency_seconds_bucket\{le="0\.05",protocol="unit"\}/), before.le25 + 2);
  assert.equal(await value(/^lilith_decision_latency_seconds_bucket\{le="\+Inf",protocol="unit"\}/), before.inf + 3);
  assert.equal(await value(/^lilith_decision_latency_seconds_count\{protocol="unit"\}/), before.inf + 3);
  assert.ok(Math.abs((await value(/^lilith_decision_latency_seconds_sum\{protocol="unit"\}/)) - 2.00302) < 1e-9);
});

test('learned names: several names per IP (latest last, bounded), v4-mapped addresses, and the SNI comparison', () => {
  const n = new LearnedNames();
  const a = 'spiffe://x/a';
  n.learn(a, '10.0.0.1', 'one.example');
  n.learn(a, '::ffff:10.0.0.1', 'two.example');
  n.learn(a, '10.0.0.1', 'one.example'); // re-learned: moves to the end, not duplicated
  assert.deepEqual(n.namesFor(a, '10.0.0.1'), ['two.example', 'one.example']);
  assert.equal(n.nameFor(a, '::ffff:10.0.0.1'), 'one.example');
  assert.deepEqual(n.namesFor('spiffe://x/other', '10.0.0.1'), [], 'per agent');
  for (let i = 0; i < 40; i++) n.learn(a, '10.0.0.2', `n${i}.example`);
  assert.equal(n.namesFor(a, '10.0.0.2').length, 16, 'bounded per IP');
  assert.equal(n.nameFor(a, '10.0.0.2'), 'n39.example');
  assert.equal(sniAgainstDns('One.Example.', n.namesFor(a, '10.0.0.1'), '10.0.0.1'), 'match', 'case and trailing dot do not matter');
  assert.equal(sniAgainstDns('three.example', n.namesFor(a, '10.0.0.1'), '10.0.0.1'), 'mismatch');
  assert.equal(sniAgainstDns('three.example', [], '10.0.0.9'), 'unknown');
  assert.equal(sniAgainstDns('localhost', [], '127.0.0.1'), 'match');
  assert.equal(sniAgainstDns('localhost', [], '10.0.0.9'), 'unknown');
});

test('parseJsonExact: one reading or a canonical re-serialisation, numbers exact', () => {
  const clean = parseJsonExact('{"jsonrpc":"2.0","id":9007199254740993,"params":{"n":[1,-2.5,true,null,"a\\nb"]}}');
  assert.equal(clean.clean, true);
  assert.equal((clean.value as { id: bigint }).id, 9007199254740993n);
  assert.equal(canonicalJson(clean.value), '{"jsonrpc":"2.0","id":9007199254740993,"params":{"n":[1,-2.5,true,null,"a\\nb"]}}');
  for (const [text, why] of [
    ['{"a":1,"a":2}', /duplicate key "a"/],
    ['{"\\u0061":1}', /escaped key "a"/],
    ['{"method":"tools\\u002fcall"}', /escaped method "tools\/call"/],
    ['{"params":{"name":"read\\u005ffile"}}', /escaped name/],
  ] as const) {
    const r = parseJsonExact(text);
    assert.equal(r.clean, false, text);
    assert.match(r.unclean ?? '', why);
  }
  // Last duplicate wins, as JSON.parse reads it; the canonical text has one member.
  assert.equal(canonicalJson(parseJsonExact('{"a":1,"b":2,"a":3}').value), '{"a":3,"b":2}');
  const proto = parseJsonExact('{"__proto__":{"x":1}}').value as object;
  assert.ok(Object.hasOwn(proto, '__proto__') && Object.getPrototypeOf(proto) === Object.prototype, '__proto__ stays an own member');
  for (const n of ['1e400', '0.10000000000000000001', '-0', '1E2']) assert.equal(parseJsonExact(`[${n}]`).numbersExact, false, n);
  for (const bad of ['\ufeff{}', '{"a":1,}', '[01]', '{"a" 1}', '"\u0001"', '[1] x', '[1.]', 'nul', '{"a":1'])
    assert.throws(() => parseJsonExact(bad), JsonExactError, JSON.stringify(bad));
  assert.throws(() => parseJsonExact('['.repeat(200) + ']'.repeat(200)), /nesting deeper than 128/);
  assert.equal(
    canonicalJson({ id: -123456789012345678901234567890n, e: { a: undefined, b: [undefined] } }),
    '{"id":-123456789012345678901234567890,"e":{"b":[null]}}',
  );
});
