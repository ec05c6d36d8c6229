// Prior-knowledge h2c with node:http2 on both ends: denied by default (the
// connection is an audited Action::"connect" with context.protocol "h2c" that no
// bundled policy permits outside Zone::"h2c"), and where a policy allows it,
// every stream decided on its own: a denied stream reset, the session serving on.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { startHarness, loopback, listen, type Harness } from './helpers.js';
import { detectProtocol, H2_PREFACE } from '../../enforcer/dataplane/protocols/detect.js';
import type { DecisionAuditEvent } from '../../enforcer/audit/event.js';
import type { Entity } from '../../cedar/types.js';

const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function h2cUpstream(): Promise<{ port: number; seen: string[] }> {
  const seen: string[] = [];
  const server = http2.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => res.end(`h2c ${req.method} ${req.url}`));
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  const port = await listen(server as unknown as import('node:net').Server);
  cleanups.push(() => {
    for (const s of sessions) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { port, seen };
}

async function harness(port: number, listed: boolean): Promise<Harness> {
  const entity: Entity = { uid: { type: 'Endpoint', id: `127.0.0.1:${port}` }, attrs: {}, parents: [{ type: 'Zone', id: 'h2c' }] };
  const h = await startHarness({ destination: loopback(port), tweaks: { entities: listed ? [entity] : [] } });
  cleanups.push(() => h.close());
  return h;
}

/** Opens an h2c session to the proxy and makes the requests in order on it: status and body, or the reset code. */
async function h2cRequests(port: number, reqs: Array<{ method: string; path: string; body?: string }>): Promise<string[]> {
  const session = http2.connect(`http://localhost:${port}`);
  session.on('error', () => undefined);
  const out: string[] = [];
  try {
    for (const r of reqs) {
      out.push(
        await new Promise<string>((resolve) => {
          const req = session.request({ ':method': r.method, ':path': r.path }, { endStream: !r.body });
          let body = '';
          let status = 0;
          req.on('response', (h) => (status = Number(h[':status'])));
          req.on('data', (d: Buffer) => (body += d.toString()));
          req.on('error', () => undefined);
          req.on('close', () => resolve(status ? `${status} ${body}` : `reset ${req.rstCode}`));
          if (r.body) req.end(r.body);
        }),
      );
      if (session.destroyed || session.closed) break;
    }
  } finally {
    session.destroy();
  }
  return out;
}

const brief = (e: DecisionAuditEvent) => `${e.action} ${e.resource} ${e.decision}`;

test('the HTTP/2 preface is detected as h2c (never read as an HTTP/1 request line)', () => {
  assert.equal(detectProtocol(H2_PREFACE), 'h2c');
  assert.equal(detectProtocol(Buffer.concat([H2_PREFACE, Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])])), 'h2c');
  assert.equal(detectProtocol(H2_PREFACE.subarray(0, 10)), 'maybe');
  assert.equal(
    detectProtocol(Buffer.from('PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n')),
    'http',
    'a broken preface goes to the strict HTTP/1 parser',
  );
  assert.equal(detectProtocol(Buffer.from('POST / HTTP/1.1\r\n')), 'http');
});

test('h2c is denied by default: audited Action::"connect" (protocol h2c), reset, nothing reaches the upstream', async () => {
  const up = await h2cUpstream();
  const h = await harness(up.port, false);
  const r = await h2cRequests(h.proxy.port, [{ method: 'GET', path: '/hello' }]);
  assert.match(r[0], /^reset|^0 /);
  assert.deepEqual(up.seen, []);
  const evs = await h.events();
  assert.deepEqual(evs.map(brief), [`Action::"connect" Endpoint::"127.0.0.1:${up.port}" deny`]);
  assert.equal(await h.settled(), 0);
});

test('h2c where a policy allows it (Zone::"h2c"): each stream decided, a denied POST reset, the session serves on', async () => {
  const up = await h2cUpstream();
  const h = await harness(up.port, true);
  const r = await h2cRequests(h.proxy.port, [
    { method: 'GET', path: '/a?1' },
    { method: 'POST', path: '/upload', body: 'x=1' },
    { method: 'GET', path: '/b' },
  ]);
  assert.deepEqual(r, ['200 h2c GET /a?1', `reset ${http2.constants.NGHTTP2_CANCEL}`, '200 h2c GET /b']);
  assert.deepEqual(up.seen, ['GET /a?1', 'GET /b'], 'the denied stream never reached the upstream');
  const evs = await h.events();
  assert.deepEqual(evs.map(brief), [
    `Action::"connect" Endpoint::"127.0.0.1:${up.port}" allow`,
    'Action::"GET" Host::"localhost" allow',
    'Action::"POST" Host::"localhost" deny',
    'Action::"GET" Host::"localhost" allow',
  ]);
  assert.deepEqual(evs[0].policies, ['h2c-listed']);
});
