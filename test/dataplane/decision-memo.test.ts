// The decision memo (decide.ts): within one snapshot the same request gets the
// remembered answer instead of a second evaluation, and only the same request —
// any difference in principal, action, resource, context value or taint mask
// is evaluated anew, as is every request whose context holds a record, and
// every request after the snapshot is replaced.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createAuthorizer, type Authorizer, type AuthzRequest, type CedarValue } from '../../cedar/index.js';
import type { LilithConfig } from '../../capsule/config.js';
import type { PolicySnapshot } from '../../enforcer/control/index.js';
import { Decider } from '../../enforcer/dataplane/decide.js';
import { dataplaneMetrics } from '../../enforcer/dataplane/metrics.js';
import type { Origin } from '../../enforcer/dataplane/origin.js';
import { TaintSessions } from '../../enforcer/dataplane/taint/sessions.js';

const AGENT = 'spiffe://lilith/agent';
const POLICIES = `
permit(principal, action == Action::"GET", resource) when { context.path == "/a" && context.note == "x" };
permit(principal, action == Action::"GET", resource) when { context.path == "/ab" && context.note == "" };
permit(principal, action == Action::"GET", resource) when { context.path == "/t" && !(context.taint.contains("SECRET")) };
permit(principal, action == Action::"GET", resource) when { context has args && context.args has ok && context.args.ok };
forbid(principal, action, resource) when { context has n && context.n == 3 };
`;

const SCHEMA = `
entity AgentGroup;
entity Agent in [AgentGroup];
entity Host;
action GET appliesTo {
  principal: [Agent],
  resource: [Host],
  context: { path: String, note?: String, n?: Long, args?: { ok: Bool }, taint: Set<String>, data_touched: Long }
};
`;

function counted(): { authorizer: Authorizer; calls: () => number } {
  const inner = createAuthorizer({ policies: { 'memo.cedar': POLICIES }, schema: SCHEMA, entities: [] }, 'fast');
  let n = 0;
  return {
    calls: () => n,
    authorizer: {
      engine: inner.engine,
      isAuthorized: (req: AuthzRequest) => {
        n++;
        return inner.isAuthorized(req);
      },
      dispose: () => inner.dispose(),
    },
  };
}

function snapshotOf(authorizer: Authorizer): PolicySnapshot {
  return {
    watermark: 1,
    digest: '0'.repeat(64),
    sourceCommit: null,
    expiresAt: new Date(Date.now() + 3_600_000),
    config: { version: 1, taint_labels: { SECRET: 3 }, on_expiry: 'keep', registrations: [] } as unknown as LilithConfig,
    entities: [],
    authorizer,
  };
}

const origin: Origin = {
  destination: { address: '10.0.0.1', port: 443, family: 4 },
  pid: null,
  identify: () => ({ spiffeId: AGENT, registration: { selectors: [], groups: [] } as never }),
};

function setup() {
  const { authorizer, calls } = counted();
  let snap = snapshotOf(authorizer);
  const taint = new TaintSessions();
  const decider = new Decider({ get: () => snap }, taint, { emit: () => undefined, dropped: () => 0, close: async () => {} });
  const decide = (context: Record<string, CedarValue>, host = 'example.com') =>
    decider.decide({
      origin,
      protocol: 'http',
      build: () => ({ action: 'GET', resource: { type: 'Host', id: host }, context: { ...context } }),
      fallback: { action: 'GET', resource: { type: 'Host', id: host } },
    }).allowed;
  return { decide, calls, taint, replace: () => (snap = snapshotOf(authorizer)) };
}

test('the same request within one snapshot is evaluated once; each difference is evaluated anew', () => {
  const { decide, calls } = setup();
  assert.equal(decide({ path: '/a', note: 'x' }), true);
  assert.equal(decide({ path: '/a', note: 'x' }), true);
  assert.equal(calls(), 1, 'the second, identical request answered from the memo');
  assert.equal(decide({ path: '/a', note: 'y' }), false, 'another value');
  assert.equal(decide({ path: '/a', note: 'x' }, 'other.example'), true, 'another resource');
  assert.equal(calls(), 3);
  // Texts that concatenate alike must not share a key: "/a"+"b" vs "/ab"+"".
  assert.equal(decide({ path: '/a', note: 'b' }), false);
  assert.equal(decide({ path: '/ab', note: '' }), true);
  assert.equal(decide({ path: '/a', note: 'b' }), false);
  assert.equal(calls(), 5);
  // A field more is another request.
  assert.equal(decide({ path: '/a', note: 'x', n: 1 }), true);
  assert.equal(decide({ path: '/a', note: 'x', n: 2 }), true);
  assert.equal(decide({ path: '/a', note: 'x', n: 2 }), true);
  assert.equal(calls(), 7);
});

test("a connection's next request differing from its last in any one way is decided on its own", () => {
  const { decide } = setup();
  const seq: Array<[Record<string, CedarValue>, string, boolean]> = [
    [{ path: '/a', note: 'x' }, 'example.com', true],
    [{ path: '/a', note: 'x', n: 3 }, 'example.com', false], // a field more
    [{ path: '/a', note: 'x' }, 'example.com', true], // a field less
    [{ path: '/a', note: 'x', n: 3 }, 'example.com', false],
    [{ path: '/a', note: 'x', n: 4 }, 'example.com', true], // a value
    [{ path: '/a', note: 'y', n: 4 }, 'example.com', false],
    [{ path: '/a', note: 'x', n: 4 }, 'example.com', true],
    [{ path: '/a', note: 'x', n: 4 }, 'other.example', true], // the resource
    [{ note: 'x', n: 4, path: '/a' }, 'other.example', true], // another order is the same request
  ];
  for (const [i, [context, host, allowed]] of seq.entries()) assert.equal(decide(context, host), allowed, `step ${i}`);
});

test('a grown taint mask, a context holding a record, and a new snapshot are each evaluated anew', () => {
  const { decide, calls, taint, replace } = setup();
  assert.equal(decide({ path: '/t' }), true);
  taint.or(AGENT, 1n << 3n);
  assert.equal(decide({ path: '/t' }), false, 'tainted since: the remembered allow does not apply');
  assert.equal(calls(), 2);
  const before = calls();
  assert.equal(decide({ path: '/r', args: { ok: true } }), true);
  assert.equal(decide({ path: '/r', args: { ok: true } }), true);
  assert.equal(decide({ path: '/r', args: { ok: false } }), false);
  assert.equal(calls(), before + 3, 'records are never remembered');
  decide({ path: '/t' });
  const n = calls();
  decide({ path: '/t' });
  assert.equal(calls(), n, 'remembered');
  replace();
  decide({ path: '/t' });
  assert.equal(calls(), n + 1, 'a new snapshot starts with no memo');
});

test('remembered decisions are counted per policy like evaluated ones (lilith_policy_decisions_total)', async () => {
  const { decide } = setup();
  const counts = async () => {
    const m = await dataplaneMetrics().policyDecisions.get();
    const out: Record<string, number> = {};
    for (const v of m.values) if (v.labels.agent === AGENT) out[`${v.labels.decision} ${v.labels.policy}`] = v.value;
    return out;
  };
  const before = await counts();
  for (let i = 0; i < 3; i++) decide({ path: '/a', note: 'x' });
  decide({ path: '/a', note: 'y' });
  for (let i = 0; i < 2; i++) decide({ path: '/a', note: 'x' });
  const after = await counts();
  const delta = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
  assert.equal(delta('allow memo.cedar#0'), 5, JSON.stringify(after));
  assert.equal(delta('deny none'), 1, JSON.stringify(after));
});
