import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import client from 'prom-client';
import { startHarness, loopback, rawExchange, type Harness } from './helpers.js';
import { startHttpUpstream, type HttpUpstream } from './upstreams.js';

const run = promisify(execFile);
let up: HttpUpstream;
let h: Harness;

before(async () => {
  up = await startHttpUpstream();
  h = await startHarness({ destination: loopback(up.port) });
});
after(async () => {
  await h.close();
  await up.close();
});

const curl = (...args: string[]) => run('curl', ['-sS', '--max-time', '20', ...args], { maxBuffer: 64 * 1024 * 1024, encoding: 'latin1' });

test('curl GET to an allowlisted host is relayed unchanged; the decision is audited', async () => {
  const { stdout } = await curl('-i', `http://localhost:${h.proxy.port}/hello?x=1`);
  assert.match(stdout, /^HTTP\/1\.1 200 OK/);
  assert.match(stdout, /hello GET \/hello\?x=1$/);
  const ev = (await h.events()).filter((e) => e.protocol === 'http').at(-1)!;
  assert.equal(ev.action, 'Action::"GET"');
  assert.equal(ev.resource, 'Host::"localhost"');
  assert.equal(ev.decision, 'allow');
  assert.deepEqual(ev.policies, ['http-read-allowlisted']);
  assert.equal(ev.destination, `127.0.0.1:${up.port}`);
});

test('curl POST outside /api/* is refused with 403 and a JSON body naming the reason; the upstream never sees it', async () => {
  const before = up.requests.length;
  const { stdout } = await curl('-i', '-X', 'POST', '--data', 'secret=1', `http://localhost:${h.proxy.port}/upload`);
  assert.match(stdout, /^HTTP\/1\.1 403 Forbidden/);
  const body = JSON.parse(stdout.slice(stdout.indexOf('\r\n\r\n') + 4));
  assert.equal(body.error, 'forbidden');
  assert.equal(body.policy, null);
  assert.match(body.reason, /default deny/);
  assert.equal(up.requests.length, before);
});

test('a Host header that disagrees with the real destination is a host_mismatch finding and denied', async () => {
  const { stdout } = await curl('-i', '-H', 'Host: api.github.com', `http://127.0.0.1:${h.proxy.port}/hello`);
  assert.match(stdout, /^HTTP\/1\.1 403/);
  const ev = (await h.events()).filter((e) => e.protocol === 'http').at(-1)!;
  assert.equal(ev.resource, 'Host::"api.github.com"');
  assert.deepEqual(ev.findings, ['host_mismatch']);
  assert.equal(ev.decision, 'deny');
});

test('large request and response bodies stream through intact, beyond the MCP body limit', async () => {
  const payload = randomBytes(12 * 1024 * 1024); // > max_body_bytes (10 MiB): not buffered whole
  const res = await fetch(`http://localhost:${h.proxy.port}/api/echo`, { method: 'POST', body: payload });
  assert.equal(res.status, 200);
  const back = Buffer.from(await res.arrayBuffer());
  assert.equal(createHash('sha256').update(back).digest('hex'), createHash('sha256').update(payload).digest('hex'));
  const { stdout } = await curl(`http://localhost:${h.proxy.port}/big?n=20000000`);
  assert.equal(stdout.length, 20_000_000);
});

test('node fetch keep-alive: several requests reuse one proxied connection', async () => {
  for (let i = 0; i < 5; i++) {
    const res = await fetch(`http://localhost:${h.proxy.port}/hello?i=${i}`);
    assert.equal(await res.text(), `hello GET /hello?i=${i}`);
  }
  const res = await fetch(`http://localhost:${h.proxy.port}/api/echo`, {
    method: 'POST',
    body: 'ping',
    headers: { 'content-type': 'text/plain' },
  });
  assert.equal(await res.text(), 'ping');
});

test('pipelined requests, chunked request bodies and a refused request in between are answered in order', async () => {
  const reqs = [
    `GET /hello?a HTTP/1.1\r\nHost: localhost\r\n\r\n`,
    `POST /api/echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n`,
    `DELETE /x HTTP/1.1\r\nHost: localhost\r\n\r\n`,
    `HEAD /hello?b HTTP/1.1\r\nHost: localhost\r\n\r\n`,
    `GET /hello?c HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`,
  ];
  const r = await rawExchange(h.proxy.port, [reqs.join('')], 15000);
  assert.ok(r.closed, 'Connection: close honoured');
  const statuses = [...r.data.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]);
  assert.deepEqual(statuses, ['200', '200', '403', '200', '200']);
  const a = r.data.indexOf('hello GET /hello?a');
  // The chunked body reached the upstream re-encoded by the proxy; the echo returns its data.
  const echo = r.data.search(/hello(\r\n6\r\n)? world/);
  const c = r.data.indexOf('hello GET /hello?c');
  assert.ok(a >= 0 && echo > a && c > echo, 'responses in request order');
  assert.ok(!r.data.includes('hello HEAD'), 'no body for HEAD');
});

test('bad input: each is refused clearly and the proxy still serves a good request after, with no connection left open', async () => {
  const good = async () => {
    const { stdout } = await curl(`http://localhost:${h.proxy.port}/hello`);
    assert.equal(stdout, 'hello GET /hello');
  };
  const cases: Array<[string, Array<string | Buffer>, RegExp]> = [
    ['malformed request line', ['GET /a b HTTP/1.1\r\n\r\n'], /^HTTP\/1\.1 400/],
    ['oversized header block', [`GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(40_000)}\r\n\r\n`], /^HTTP\/1\.1 431/],
    [
      'Transfer-Encoding with Content-Length (smuggling)',
      ['POST /api/echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
      /^HTTP\/1\.1 400/,
    ],
    ['obsolete line folding', ['GET / HTTP/1.1\r\nHost: localhost\r\nX: a\r\n b\r\n\r\n'], /^HTTP\/1\.1 400/],
    ['missing Host', ['GET / HTTP/1.1\r\n\r\n'], /^HTTP\/1\.1 400/],
    [
      'bad chunk size',
      ['POST /api/echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'],
      /^(HTTP\/1\.1 200[\s\S]*)?$/,
    ],
    ['HTTP/2 preface on the HTTP path', ['PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'], /^(HTTP\/1\.1 (400|505)[\s\S]*)?$/],
  ];
  for (const [name, chunks, expect] of cases) {
    const r = await rawExchange(h.proxy.port, chunks, 15000);
    assert.match(r.data, expect, name);
    assert.ok(r.closed, `${name}: connection closed by the proxy`);
    await good();
    assert.equal(await h.settled(), 0, `${name}: no connection left open`);
  }
  const malformed = (await h.events()).filter((e) => e.reason?.startsWith('malformed request'));
  assert.ok(malformed.length >= 5, 'malformed input is audited as a deny');
});

test('half-closed client: a request followed by FIN still gets its response', async () => {
  const r = await rawExchange(h.proxy.port, ['GET /hello?half HTTP/1.1\r\nHost: localhost\r\n\r\n'], 3000, { endAfter: true });
  assert.match(r.data, /hello GET \/hello\?half/);
  assert.ok(r.closed);
  assert.equal(await h.settled(), 0);
});

test('upstream resetting mid-response resets the client; upstream refusing gives 502', async () => {
  const r = await rawExchange(h.proxy.port, ['GET /reset-mid HTTP/1.1\r\nHost: localhost\r\n\r\n'], 3000);
  assert.match(r.data, /^HTTP\/1\.1 200/);
  assert.ok(r.data.includes('partial') && r.closed, 'client connection broken, not completed');
  assert.ok(r.reset, 'client sees a reset');
  // A destination with nothing listening.
  const dead = net.createServer();
  await new Promise<void>((res) => dead.listen(0, '127.0.0.1', () => res()));
  const deadPort = (dead.address() as net.AddressInfo).port;
  await new Promise<void>((res) => dead.close(() => res()));
  h.origin.options.destination = loopback(deadPort);
  try {
    const { stdout } = await curl('-i', `http://localhost:${h.proxy.port}/hello`);
    assert.match(stdout, /^HTTP\/1\.1 502/);
    assert.match(stdout, /ECONNREFUSED/);
  } finally {
    h.origin.options.destination = loopback(up.port);
  }
  const { stdout } = await curl(`http://localhost:${h.proxy.port}/hello`);
  assert.equal(stdout, 'hello GET /hello');
  assert.equal(await h.settled(), 0);
});

test('client vanishing mid-stream tears down the upstream connection', async () => {
  await new Promise<void>((resolve) => {
    const s = net.connect(h.proxy.port, '127.0.0.1', () => s.write('GET /big?n=200000000 HTTP/1.1\r\nHost: localhost\r\n\r\n'));
    let got = 0;
    s.on('data', (d) => {
      got += d.length;
      if (got > 1_000_000) {
        s.destroy();
        resolve();
      }
    });
  });
  assert.equal(await h.settled(), 0);
  for (let i = 0; i < 200 && up.openSockets() > 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(up.openSockets(), 0, 'upstream socket closed');
  const { stdout } = await curl(`http://localhost:${h.proxy.port}/hello`);
  assert.equal(stdout, 'hello GET /hello');
});

test('slowloris: a head dribbled slower than the idle timeout is cut off with 408', async () => {
  const slow = await startHarness({ destination: loopback(up.port), tweaks: { config: (c) => void (c.proxy.idle_timeout_ms = 400) } });
  try {
    const chunks = ['GET / HTTP/1.1\r\n', ...Array.from({ length: 20 }, (_, i) => `X-${i}: y\r\n`)];
    const r = await rawExchange(slow.proxy.port, chunks, 5000, { gapMs: 100 });
    assert.match(r.data, /^HTTP\/1\.1 408/);
    assert.ok(r.closed);
    const silent = await rawExchange(slow.proxy.port, ['GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n'], 15000);
    assert.match(silent.data, /hello GET \/hello/);
    assert.ok(silent.closed, 'an idle keep-alive connection is closed after the idle timeout');
    assert.equal(await slow.settled(), 0);
  } finally {
    await slow.close();
  }
});

test('metrics: decisions by result, latency histogram, active connections, taint sessions and watermark in the default registry', async () => {
  await curl(`http://localhost:${h.proxy.port}/hello`);
  const text = await client.register.metrics();
  assert.match(text, /lilith_decisions_total\{protocol="http",decision="allow"\} [1-9]/);
  assert.match(text, /lilith_decisions_total\{protocol="http",decision="deny"\} [1-9]/);
  assert.match(text, /lilith_decision_latency_seconds_bucket\{le="0\.05",protocol="http"\} [1-9]/);
  assert.match(text, /lilith_active_connections 0/);
  assert.match(text, /lilith_taint_sessions \d+/);
  assert.match(text, new RegExp(`lilith_capsule_watermark ${h.snapshots.current!.watermark}`));
  assert.match(text, /lilith_audit_dropped_events 0/);
});

test('fuzz: random and mutated inputs (HTTP, chunked, TLS-looking) never take the proxy down or leak a connection', async () => {
  const seeds = [
    'GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n',
    'POST /api/echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
    'POST /api/echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello',
  ];
  let rng = 0x2545f491;
  const rand = (n: number) => {
    rng ^= rng << 13;
    rng ^= rng >>> 17;
    rng ^= rng << 5;
    return (rng >>> 0) % n;
  };
  const inputs: Buffer[] = [];
  for (let i = 0; i < 150; i++) {
    const base = Buffer.from(seeds[rand(seeds.length)]);
    const b = Buffer.from(base);
    for (let k = 0, m = 1 + rand(6); k < m; k++) b[rand(b.length)] = rand(256);
    inputs.push(
      rand(4) === 0 ? Buffer.concat([Buffer.from([0x16, 0x03, rand(4)]), randomBytes(rand(300))]) : b.subarray(0, 1 + rand(b.length)),
    );
  }
  for (let i = 0; i < inputs.length; i += 10) {
    await Promise.all(inputs.slice(i, i + 10).map((inp) => rawExchange(h.proxy.port, [inp], 1500, { endAfter: rand(2) === 0 })));
  }
  const { stdout } = await curl(`http://localhost:${h.proxy.port}/hello`);
  assert.equal(stdout, 'hello GET /hello');
  // Connections the fuzzer left half-open end at the idle timeout at the latest; those it closed are gone now.
  const open = await h.settled();
  assert.equal(open, 0);
});

test('plain HTTP responses run the content detectors: a private key downloaded adds CREDENTIALS', async () => {
  const reader = await startHarness({ destination: loopback(up.port), facts: { pid: process.pid, cgroupPath: '/lilith/agents/reader' } });
  try {
    const id = 'spiffe://corp.example/agents/reader';
    await curl(`http://localhost:${reader.proxy.port}/hello`);
    assert.equal(reader.dp.taint.mask(id), 0n, 'ordinary text sets nothing');
    const { stdout } = await curl(`http://localhost:${reader.proxy.port}/secret`);
    assert.match(stdout, /BEGIN OPENSSH PRIVATE KEY/);
    assert.equal(reader.dp.taint.mask(id), 0x8n, 'CREDENTIALS, even with the key header split across reads');
    const next = await curl('-i', `http://localhost:${reader.proxy.port}/hello`);
    assert.match(next.stdout, /^HTTP\/1\.1 200/, 'reads still allowed');
    const ev = (await reader.events()).filter((e) => e.protocol === 'http').at(-1)!;
    assert.equal(ev.taint_before, '0x0000000000000008');
  } finally {
    await reader.close();
  }
});

test('response detectors run before the next decision, even for a request pipelined behind the response that taints', async () => {
  // A fresh agent identity, so its mask starts clean.
  const reader = await startHarness({ destination: loopback(up.port), facts: { pid: process.pid, cgroupPath: '/lilith/agents/reader' } });
  try {
    const r = await rawExchange(
      reader.proxy.port,
      ['GET /secret HTTP/1.1\r\nHost: localhost\r\n\r\nGET /hello?after HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'],
      15000,
    );
    assert.deepEqual(
      [...r.data.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]),
      ['200', '200'],
    );
    const evs = (await reader.events()).filter((e) => e.protocol === 'http');
    assert.equal(evs.length, 2);
    assert.equal(evs[0].taint_before, '0x0000000000000000');
    assert.equal(evs[1].taint_before, '0x0000000000000008', 'the pipelined request was decided with CREDENTIALS already set');
  } finally {
    await reader.close();
  }
});
