// One agent's flood must not delay another agent's work: connection-level
// refusals run in per-agent round robin, bounded per turn, and over-cap resets
// are audited as counts that are never lost. Plus the taint shortcut for MCP
// replies: a JSON text in which no detector could find anything is not parsed,
// and that shortcut never says "nothing" where a detector would find something.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { FairQueue } from '../../enforcer/dataplane/proxy/fair-queue.js';
import { detect, mayDetectInJson, type DetectorName } from '../../enforcer/dataplane/taint/detectors.js';
import { startHarness, loopback, rawExchange } from './helpers.js';
import { startHttpUpstream } from './upstreams.js';

const CODER_ID = 'spiffe://corp.example/agents/coder';

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('fair queue: a burst of one agent is served in round robin with others, a bounded number per turn', async () => {
  const q = new FairQueue({ perTurn: 4, turnMs: 1000 });
  const order: string[] = [];
  for (let i = 0; i < 100; i++) q.run('flooder', () => order.push('f'));
  q.run('victim', () => order.push('v'));
  q.run('third', () => order.push('t'));
  // Nothing runs in the caller's turn.
  assert.equal(order.length, 0);
  await new Promise((r) => setImmediate(r));
  // First turn: at most 4 jobs, the victim's and the third agent's among them.
  assert.ok(order.length <= 4, `${order.length} jobs in one turn`);
  assert.deepEqual(order.slice(0, 4).sort(), ['f', 'f', 't', 'v']);
  await until('all jobs', () => order.length === 102);
  assert.equal(q.pending, 0);
  assert.equal(q.waiting('flooder'), 0);
  // A job that throws costs itself only.
  const done: number[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    q.run('a', () => {
      throw new Error('boom');
    });
    q.run('a', () => done.push(1));
    await until('the job after the throwing one', () => done.length === 1);
  } finally {
    process.stderr.write = write;
  }
  // flush runs what waits, at once.
  q.run('b', () => done.push(2));
  q.flush();
  assert.deepEqual(done, [1, 2]);
});

test('fair queue: jobs held back run together after their delay, counted as waiting; flush runs them at once', async () => {
  const q = new FairQueue();
  const ran: string[] = [];
  const t0 = Date.now();
  for (let i = 0; i < 5; i++) q.runAfter('flooder', 150, () => ran.push(`held${i}`));
  q.run('victim', () => ran.push('victim'));
  assert.equal(q.waiting('flooder'), 5);
  await until('the victim job', () => ran.includes('victim'));
  assert.deepEqual(ran, ['victim'], 'held jobs wait for their delay');
  await until('held jobs', () => ran.length === 6);
  assert.ok(Date.now() - t0 >= 140, `held jobs ran after ${Date.now() - t0} ms`);
  assert.equal(q.waiting('flooder'), 0);
  q.runAfter('flooder', 60_000, () => ran.push('late'));
  q.flush();
  assert.equal(ran.at(-1), 'late');
});

test('connection cap: resets counted between audited refusals are audited as one event with their number', async () => {
  const up = await startHttpUpstream();
  const cap = 3;
  const h = await startHarness({ destination: loopback(up.port), extra: { budgets: { connections: cap } } });
  const held: net.Socket[] = [];
  try {
    for (let i = 0; i < cap; i++) {
      const s = net.connect(h.proxy.port, '127.0.0.1');
      s.on('error', () => undefined);
      held.push(s);
    }
    await until(`${cap} connections counted`, () => h.dp.budgetUse(CODER_ID).connections === cap);
    const n = 25;
    const refused = await Promise.all(
      Array.from({ length: n }, () => rawExchange(h.proxy.port, ['GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n'], 3000)),
    );
    for (const r of refused) assert.ok(r.closed && r.data === '', 'over the cap: closed, nothing answered');
    assert.equal(up.requests.length, 0);
    // The first refusal is audited at once; the others arrive as one count when the interval ends.
    const capped = async () => (await h.events()).filter((e) => /open connections \(limit 3\)/.test(e.reason ?? ''));
    const t0 = Date.now();
    let events = await capped();
    while (Date.now() - t0 < 3000) {
      const counted = events.reduce(
        (sum, e) =>
          sum + (e.reason?.includes('over the cap reset') ? Number(/(\d+) connections? over the cap reset/.exec(e.reason)![1]) : 1),
        0,
      );
      if (counted === n) break;
      await new Promise((r) => setTimeout(r, 100));
      events = await capped();
    }
    const counted = events.reduce(
      (sum, e) => sum + (e.reason?.includes('over the cap reset') ? Number(/(\d+) connections? over the cap reset/.exec(e.reason)![1]) : 1),
      0,
    );
    assert.equal(counted, n, `every refusal counted: ${JSON.stringify(events.map((e) => e.reason))}`);
    assert.ok(events.length <= 3, `${events.length} events for ${n} refusals`);
    assert.ok(events.every((e) => e.decision === 'deny' && e.spiffe_id === CODER_ID));
  } finally {
    for (const s of held) s.destroy();
    await h.close();
    await up.close();
  }
});

// ---- the reply shortcut -----------------------------------------------------------

const DETECTORS: DetectorName[] = ['private_key', 'aws_access_key', 'card_number', 'email'];

/** Deterministic pseudo-random source, so a failure is reproducible. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const PIECES = [
  '-----BEGIN PRIVATE KEY-----',
  '-----BEGIN RSA PRIVATE KEY-----',
  'AKIAIOSFODNN7EXAMPLE',
  'ASIAY34FZKBOKMUTVV7A',
  'aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
  'alice@example.com',
  '4111 1111 1111 1111',
  '4111-1111-1111-1111',
  '4111111111111111',
  '5500000000000004',
  'hello',
  ' ',
  '\n',
  '"',
  '\\',
  '/',
  '@',
  '12',
  '411111',
  'é',
];

function randomString(r: () => number): string {
  let s = '';
  const n = Math.floor(r() * 4);
  for (let i = 0; i < n; i++) s += PIECES[Math.floor(r() * PIECES.length)];
  return s;
}

function randomValue(r: () => number, depth = 0): unknown {
  const k = Math.floor(r() * (depth > 3 ? 3 : 6));
  if (k === 0) return randomString(r);
  if (k === 1) {
    const numbers = [4111111111111111, 5500000000000004, 1e21, 4.111111111111111e15, 12, -7.5, 1e12, 0.1];
    return numbers[Math.floor(r() * numbers.length)];
  }
  if (k === 2) return r() < 0.5 ? null : r() < 0.5;
  if (k === 3) return Array.from({ length: Math.floor(r() * 3) }, () => randomValue(r, depth + 1));
  const o: Record<string, unknown> = {};
  for (let i = 0; i < Math.floor(r() * 3); i++) o[randomString(r) || `k${i}`] = randomValue(r, depth + 1);
  return o;
}

/** Other spellings of the same JSON: whitespace, \u escapes, exponent numbers, escaped slashes. */
function spellings(v: unknown): string[] {
  const plain = JSON.stringify(v);
  const spaced = JSON.stringify(v, null, 1);
  const uEscaped = plain.replace(/[@A-Z0-9]/g, (c, i: number) => (i % 3 === 0 ? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}` : c));
  const slashes = plain.replace(/\//g, '\\/');
  const exponent = plain.replace(/(?<=[:[,])4111111111111111(?=[,\]}])/g, '4.111111111111111e15');
  // 999999999999.99999 reads as 1e12: a rounded-up integer part one digit longer than its text.
  const roundedUp = plain.replace(/(?<=[:[,])1000000000000(?=[,\]}])/g, '999999999999.99999');
  return [plain, spaced, uEscaped, slashes, exponent, roundedUp].filter((t) => {
    try {
      JSON.parse(t);
      return true;
    } catch {
      return false;
    }
  });
}

/** Every value a reply inspection could serialise: the whole and each nested value. */
function allValues(v: unknown, out: unknown[] = []): unknown[] {
  out.push(v);
  if (Array.isArray(v)) for (const x of v) allValues(x, out);
  else if (v && typeof v === 'object') for (const x of Object.values(v)) allValues(x, out);
  return out;
}

test('reply shortcut: no JSON text is skipped whose values a detector would match (random corpus and spellings)', () => {
  const r = rng(14);
  let skipped = 0;
  let checked = 0;
  for (let i = 0; i < 4000; i++) {
    const v = { jsonrpc: '2.0', id: i, result: randomValue(r) };
    for (const text of spellings(v)) {
      const parsed = JSON.parse(text);
      for (const name of DETECTORS) {
        checked++;
        if (mayDetectInJson(name, text)) continue;
        skipped++;
        for (const x of allValues(parsed)) {
          const s = JSON.stringify(x);
          if (s !== undefined)
            assert.equal(detect(name, s), false, `${name} matches ${s} inside ${text}, but the shortcut skipped the text`);
        }
      }
    }
  }
  // The shortcut is taken often enough to matter, and never wrongly.
  assert.ok(skipped > checked / 10, `${skipped} of ${checked} skipped`);
});

test('reply shortcut: named evasions are looked at in full', () => {
  const cases: Array<[DetectorName, string]> = [
    ['email', '{"result":"alice\\u0040example.com"}'],
    ['card_number', '{"result":4.111111111111111e15}'],
    ['card_number', '{"result":41111111111111111111}'],
    ['private_key', '{"result":"-----BEGIN\\u0020PRIVATE KEY-----"}'],
    ['aws_access_key', '{"result":"\\u0041KIAIOSFODNN7EXAMPLE"}'],
    ['aws_access_key', '{"aws_secret_access_key":"x","v":"aws_secret_access_key: wJalrXUtnFEMI\\/K7MDENG\\/bPxRfiCYEXAMPLEKEY"}'],
  ];
  for (const [name, text] of cases) assert.equal(mayDetectInJson(name, text), true, `${name}: ${text}`);
  assert.equal(mayDetectInJson('email', '{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hello"}]}}'), false);
});
