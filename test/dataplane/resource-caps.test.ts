// Per-agent resource caps (issue 14), end to end on real sockets against a
// running dataplane: held request bodies over the agent's budget are refused
// and the budget is given back; an unanswering resolver costs one shared
// socket and the agent's in-flight DNS slots, never an fd per query; permitted
// tunnels end at their idle and total deadlines and release their fds; a TLS
// hello that stalls after its record header is cut at the detection deadline;
// concurrent first connections from one new executable hash it once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import http from 'node:http';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHarness, loopback, listen, closeServer, rawExchange } from './helpers.js';
import { startHttpUpstream } from './upstreams.js';
import { buildQuery } from '../../enforcer/dataplane/dns/wire.js';
import { KernelOriginResolver } from '../../enforcer/dataplane/origin.js';
import { exeHashesStarted } from '../../identity/process-facts.js';

const CODER_ID = 'spiffe://corp.example/agents/coder';
const fds = () => readdirSync('/proc/self/fd').length;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Fds settle a little after sockets close (libuv closes them on the next loop turn). */
async function fdsBackTo(baseline: number, slack = 3): Promise<number> {
  for (let i = 0; i < 200 && fds() > baseline + slack; i++) await sleep(10);
  return fds();
}

test('held body budget: bodies beyond the agent budget are refused, and the budget is given back when holders go', async () => {
  const up = await startHttpUpstream();
  const h = await startHarness({ destination: loopback(up.port), extra: { budgets: { heldBytes: 64 * 1024 } } });
  const open: net.Socket[] = [];
  try {
    const head = (len: number) =>
      `POST /api/echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${len}\r\n\r\n`;
    // Two clients each send 30,000 of a declared 40,000-byte JSON body and stall: the proxy holds them (60,000 ≤ 65,536).
    for (let i = 0; i < 2; i++) {
      const s = net.connect(h.proxy.port, '127.0.0.1');
      s.on('error', () => undefined);
      s.write(head(40_000) + `{"a":"${'x'.repeat(30_000 - 6)}`);
      open.push(s);
    }
    await until('60,000 held bytes', () => h.dp.budgetUse(CODER_ID).heldBytes === 60_000);
    // A third body would pass the budget: refused with 503 before it is held, nothing reaches the upstream.
    const third = await rawExchange(h.proxy.port, [head(40_000) + `{"a":"${'y'.repeat(30_000 - 6)}`], 3000);
    assert.match(third.data, /^HTTP\/1\.1 503 /);
    assert.match(third.data, /held body budget exhausted/);
    assert.equal(h.dp.budgetUse(CODER_ID).heldBytes, 60_000);
    assert.equal(up.requests.length, 0, 'no held body reached the upstream');
    // The holders vanish: their bytes are released, and a full body fits again and is forwarded.
    for (const s of open) s.destroy();
    await until('held bytes released', () => h.dp.budgetUse(CODER_ID).heldBytes === 0);
    const body = `{"a":"${'z'.repeat(40_000 - 8)}"}`;
    const ok = await rawExchange(
      h.proxy.port,
      [head(body.length).replace('HTTP/1.1\r\n', 'HTTP/1.1\r\nConnection: close\r\n') + body],
      5000,
    );
    assert.match(ok.data, /^HTTP\/1\.1 200 /);
    assert.equal(up.requests.length, 1);
    assert.equal(up.requests[0].bodyBytes, body.length);
    await until('budget entry dropped', () => h.dp.budgetUse(CODER_ID).heldBytes === 0);
    const refused = (await h.events()).filter((e) => /held body budget/.test(e.reason ?? ''));
    assert.ok(refused.length <= 1, 'the refusal is audited at most once');
  } finally {
    for (const s of open) s.destroy();
    await h.close();
    await up.close();
  }
});

test('DNS in-flight cap: a silent resolver costs no socket per query, and the query past the cap is refused at once', async () => {
  const silent = dgram.createSocket('udp4');
  const seen: Buffer[] = [];
  silent.on('message', (m) => seen.push(m));
  await new Promise<void>((r) => silent.bind(0, '127.0.0.1', () => r()));
  const cap = 8;
  const h = await startHarness({
    destination: loopback(1),
    dns: true,
    dnsUpstream: `127.0.0.1:${silent.address().port}`,
    extra: { budgets: { dnsInFlight: cap }, dnsTimeoutMs: 1500 },
  });
  const client = dgram.createSocket('udp4');
  const replies = new Map<number, { rcode: number; at: number }>();
  client.on('message', (m) => replies.set(m.readUInt16BE(0), { rcode: m.readUInt16BE(2) & 0xf, at: Date.now() }));
  await new Promise<void>((r) => client.bind(0, '127.0.0.1', () => r()));
  const dns = h.dp.dnsAddress!;
  const ask = (id: number) => client.send(buildQuery(id, 'localhost', 1), dns.port, dns.address);
  try {
    // Warm up (the audit file opens on the first event), then take the baseline.
    client.send(buildQuery(99, 'evil.example', 1), dns.port, dns.address);
    await until('the warm-up answer', () => replies.has(99));
    await h.events();
    const before = fds();
    for (let id = 1; id <= cap; id++) ask(id);
    await until(`${cap} queries at the resolver`, () => seen.length === cap);
    assert.equal(h.dp.budgetUse(CODER_ID).dns, cap);
    const during = fds();
    assert.ok(during - before <= 1, `fds grew by ${during - before} with ${cap} unanswered queries (one shared upstream socket expected)`);
    const sent = Date.now();
    ask(100);
    await until('the refusal', () => replies.has(100), 2000);
    const refusal = replies.get(100)!;
    assert.equal(refusal.rcode, 5, 'REFUSED');
    assert.ok(refusal.at - sent < 1000, `refused after ${refusal.at - sent} ms`);
    assert.equal(seen.length, cap, 'the refused query never reached the resolver');
    // At the resolver timeout each held query gets SERVFAIL and gives its slot back.
    await until('SERVFAIL for the held queries', () => [...Array(cap).keys()].every((i) => replies.get(i + 1)?.rcode === 2), 6000);
    await until('slots released', () => h.dp.budgetUse(CODER_ID).dns === 0);
    ask(101);
    await until('the next query is forwarded', () => seen.length === cap + 1);
    process.stdout.write(
      `# dns: ${cap} unanswered queries: fds ${before} → ${during}; query ${cap + 1} refused in ${refusal.at - sent} ms\n`,
    );
  } finally {
    client.close();
    silent.close();
    await h.close();
  }
});

const UPGRADE_POLICY = `@id("test-upgrade-websocket")
permit (principal, action == Action::"upgrade", resource == Host::"localhost")
when { context has upgrade && context.upgrade == "websocket" };
`;

/** An HTTP server that switches every upgrade request to a raw stream: `echo` echoes it, `silent` says nothing, `end` half-closes at once. */
async function startUpgradeServer(mode: () => 'echo' | 'silent' | 'end') {
  const server = http.createServer((_req, res) => res.end('no upgrade'));
  const sockets = new Set<net.Socket>();
  server.on('upgrade', (_req, socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    const m = mode();
    if (m === 'echo') socket.on('data', (d) => socket.write(d));
    if (m === 'end') socket.end();
  });
  const port = await listen(server);
  return { port, open: () => sockets.size, close: () => closeServer(server) };
}

/** Opens a websocket tunnel through the proxy; resolves once the 101 arrived, with the time the socket closed. */
function openTunnel(proxyPort: number): Promise<{ socket: net.Socket; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port: proxyPort, host: '127.0.0.1', allowHalfOpen: true });
    const closed = new Promise<number>((r) => s.on('close', () => r(Date.now())));
    s.on('error', () => undefined);
    let got = '';
    const onData = (d: Buffer) => {
      got += d.toString('latin1');
      if (!got.includes('\r\n\r\n')) return;
      s.off('data', onData);
      if (!got.startsWith('HTTP/1.1 101')) return reject(new Error(`no tunnel: ${got.slice(0, 200)}`));
      s.on('data', () => undefined);
      resolve({ socket: s, closed });
    };
    s.on('data', onData);
    s.write(
      'GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
  });
}

test('tunnels: idle and total deadlines end permitted tunnels and release their fds; both ends closing releases at once', async () => {
  let mode: 'echo' | 'silent' | 'end' = 'silent';
  const srv = await startUpgradeServer(() => mode);
  const idleMs = 400;
  const maxMs = 1500;
  const h = await startHarness({
    destination: loopback(srv.port),
    tweaks: { policies: { 'test-upgrade.cedar': UPGRADE_POLICY }, config: (c) => (c.proxy.idle_timeout_ms = idleMs) },
    extra: { tunnelMaxMs: maxMs },
  });
  try {
    // Warm up (audit file, lazily opened fds), then take the baseline.
    const warm = await openTunnel(h.proxy.port);
    await warm.closed;
    await until('drained', () => h.dp.activeConnections() === 0 && srv.open() === 0);
    const baseline = fds();

    const n = 20;
    const opened = Date.now();
    const tunnels = await Promise.all(Array.from({ length: n }, () => openTunnel(h.proxy.port)));
    const during = fds();
    assert.ok(during - baseline >= 3 * n, `fds during: ${during} (baseline ${baseline})`);
    const closedAt = await Promise.all(tunnels.map((t) => t.closed));
    const lifetimes = closedAt.map((t) => t - opened);
    assert.ok(Math.min(...lifetimes) >= idleMs - 50, `a silent tunnel closed before the idle timeout (${Math.min(...lifetimes)} ms)`);
    assert.ok(Math.max(...lifetimes) < idleMs + 4000, `silent tunnels lived up to ${Math.max(...lifetimes)} ms`);
    await until('proxy and server sides gone', () => h.dp.activeConnections() === 0 && srv.open() === 0);
    const after = await fdsBackTo(baseline);
    assert.ok(after <= baseline + 3, `fds after idle tunnels: ${after} (baseline ${baseline})`);

    // A chatty tunnel is never idle: the total deadline ends it.
    mode = 'echo';
    const chatty = await openTunnel(h.proxy.port);
    const start = Date.now();
    const tick = setInterval(() => chatty.socket.write('ping'), 100);
    const end = await chatty.closed;
    clearInterval(tick);
    assert.ok(end - start >= maxMs - 300, `chatty tunnel ended after ${end - start} ms (before tunnelMaxMs ${maxMs})`);
    assert.ok(end - start < maxMs + 4000, `chatty tunnel lived ${end - start} ms`);

    // Both ends close: fds are released without waiting for a deadline.
    mode = 'end';
    const ended = await Promise.all(Array.from({ length: 10 }, () => openTunnel(h.proxy.port)));
    const t0 = Date.now();
    for (const t of ended) t.socket.end();
    await Promise.all(ended.map((t) => t.closed));
    await until('proxy released both-ends-closed tunnels', () => h.dp.activeConnections() === 0 && srv.open() === 0);
    const released = Date.now() - t0;
    const final = await fdsBackTo(baseline);
    assert.ok(final <= baseline + 3, `fds after closed tunnels: ${final} (baseline ${baseline})`);
    process.stdout.write(
      `# tunnels: fds ${baseline} → ${during} (${n} idle tunnels) → ${after}; idle close at ${Math.min(...lifetimes)}–${Math.max(...lifetimes)} ms; chatty ended at ${end - start} ms; both-ends-closed released in ${released} ms\n`,
    );
  } finally {
    await h.close();
    await srv.close();
  }
});

test('a TLS hello stalled after its record header is cut at the detection deadline, and its fds released', async () => {
  const up = await startHttpUpstream();
  const deadline = 400;
  const h = await startHarness({ destination: loopback(up.port), extra: { detectTimeoutMs: deadline } });
  try {
    await rawExchange(h.proxy.port, [Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00])], 3000); // warm up
    await until('drained', () => h.dp.activeConnections() === 0);
    const baseline = fds();
    const n = 20;
    const started = Date.now();
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        rawExchange(
          h.proxy.port,
          // A record header announcing 512 bytes (half the cases also a handshake header), then nothing.
          [Buffer.from(i % 2 ? [0x16, 0x03, 0x01, 0x02, 0x00] : [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc])],
          deadline + 5000,
        ).then((r) => ({ ...r, at: Date.now() - started })),
      ),
    );
    for (const r of results) {
      assert.ok(r.closed, 'the proxy closed the stalled hello');
      assert.equal(r.data, '', 'nothing came back');
      assert.ok(r.at >= deadline - 50 && r.at < deadline + 4000, `cut after ${r.at} ms`);
    }
    assert.equal(up.requests.length + up.openSockets(), 0, 'nothing reached the upstream');
    await until('drained', () => h.dp.activeConnections() === 0);
    const after = await fdsBackTo(baseline);
    assert.ok(after <= baseline + 3, `fds after: ${after} (baseline ${baseline})`);
    const events = (await h.events()).filter((e) => new RegExp(`TLS ClientHello not received within ${deadline} ms`).test(e.reason ?? ''));
    assert.equal(events.length, n + 1);
    assert.ok(events.every((e) => e.decision === 'deny'));
    process.stdout.write(
      `# stalled hellos: cut at ${Math.min(...results.map((r) => r.at))}–${Math.max(...results.map((r) => r.at))} ms; fds ${baseline} → ${after}\n`,
    );
  } finally {
    await h.close();
    await up.close();
  }
});

test('concurrent first connections from one new executable hash it once (identity by sha256 selector)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lilith-exe-'));
  const exe = join(dir, 'agent-node');
  await copyFile(process.execPath, exe); // a new inode: nothing cached for it
  await chmod(exe, 0o755);
  const sha = createHash('sha256')
    .update(await readFile(exe))
    .digest('hex');
  const child = spawn(exe, ['-e', 'setInterval(() => {}, 1e6)'], { stdio: 'ignore' });
  const up = await startHttpUpstream();
  // The kernel's redirect record for every connection: this upstream, this process (the rest of the path is the real one).
  const kernel = {
    originalDestination: () => ({
      address: '127.0.0.1',
      port: up.port,
      family: 4 as const,
      pid: child.pid!,
      tgid: child.pid!,
      uid: 0,
      gid: 0,
    }),
  };
  const h = await startHarness({
    destination: loopback(up.port),
    tweaks: {
      config: (c) => {
        c.registrations[0].selectors = [`unix:sha256:${sha}`];
      },
    },
    extra: { origin: new KernelOriginResolver(kernel) },
  });
  try {
    const before = exeHashesStarted();
    const n = 12;
    const results = await Promise.all(
      Array.from({ length: n }, () =>
        rawExchange(h.proxy.port, ['GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'], 20_000),
      ),
    );
    for (const r of results)
      assert.match(r.data, /^HTTP\/1\.1 200 /, `identified by its hash and allowed: ${JSON.stringify(await h.events())}`);
    assert.equal(exeHashesStarted() - before, 1, `${n} concurrent first connections started ${exeHashesStarted() - before} hashes`);
    const events = (await h.events()).filter((e) => e.spiffe_id === CODER_ID);
    assert.equal(events.length, n);
  } finally {
    child.kill('SIGKILL');
    await h.close();
    await up.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('connection cap: a reconnect loop over the cap is reset (held back at most 250 ms, no decision each), audited once per second with a count', async () => {
  const up = await startHttpUpstream();
  const cap = 4;
  const h = await startHarness({ destination: loopback(up.port), extra: { budgets: { connections: cap } } });
  const held: net.Socket[] = [];
  try {
    for (let i = 0; i < cap; i++) {
      const s = net.connect(h.proxy.port, '127.0.0.1');
      s.on('error', () => undefined);
      held.push(s);
    }
    await until(`${cap} connections counted`, () => h.dp.budgetUse(CODER_ID).connections === cap);
    const n = 40;
    const t0 = Date.now();
    const refused = await Promise.all(
      Array.from({ length: n }, () => rawExchange(h.proxy.port, ['GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n'], 3000)),
    );
    const took = Date.now() - t0;
    for (const r of refused) {
      assert.ok(r.closed, 'over the cap: closed by the proxy');
      assert.equal(r.data, '');
    }
    assert.equal(up.requests.length, 0);
    const events = (await h.events()).filter((e) => /open connections \(limit 4\)/.test(e.reason ?? ''));
    assert.ok(
      events.length >= 1 && events.length <= 1 + Math.ceil(took / 1000),
      `${events.length} audited refusals for ${n} in ${took} ms`,
    );
    assert.ok(events.every((e) => e.decision === 'deny'));
    // The held ones go: the agent gets its connections back.
    for (const s of held) s.destroy();
    await until('released', () => h.dp.budgetUse(CODER_ID).connections === 0);
    const ok = await rawExchange(h.proxy.port, ['GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'], 3000);
    assert.match(ok.data, /^HTTP\/1\.1 200 /);
  } finally {
    for (const s of held) s.destroy();
    await h.close();
    await up.close();
  }
});
