// Exact 64-bit Longs end to end: the taint mask reaches both engines as the exact
// signed Long (labels at bits 52, 53, 62, 63), request context and entity
// attributes carry Longs beyond 2^53 exactly, and values outside the 64-bit range
// are refused, never wrapped. Real engines (the compiled one and cedar-wasm) behind
// the real Decider.
import assert from 'node:assert/strict';
import { dirname, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { bundleOf, encodePayload, parsePayload } from '../../capsule/payload.js';
import { createAuthorizer, type Authorizer, type AuthzRequest, type EngineName, type Entity } from '../../cedar/index.js';
import { parseJsonLong, stringifyJsonLong } from '../../cedar/json-long.js';
import type { LilithConfig } from '../../capsule/config.js';
import type { AuditEvent } from '../../enforcer/audit/event.js';
import { contentRefusal, type PolicySnapshot } from '../../enforcer/control/index.js';
import { Decider } from '../../enforcer/dataplane/decide.js';
import type { Origin } from '../../enforcer/dataplane/origin.js';
import { parseJsonExact } from '../../enforcer/dataplane/protocols/json-exact.js';
import { projectArguments } from '../../enforcer/dataplane/proxy/schema-shapes.js';
import { labelsToMask, maskToLong } from '../../enforcer/dataplane/taint/mask.js';
import { TaintSessions } from '../../enforcer/dataplane/taint/sessions.js';
import { buildPayload } from '../../pipeline/capsule-build.js';
import { parseEntities, readPolicyDir } from '../../pipeline/policy-source.js';

const ENGINES: EngineName[] = ['fast', 'wasm'];
const LABELS = { LOW: 0, B52: 52, B53: 53, B62: 62, B63: 63 };
const AGENT = 'spiffe://lilith/agent';

const SCHEMA = `
entity AgentGroup;
entity Agent in [AgentGroup];
entity Account { balance: Long, limits: Set<Long> };
action "read_file" appliesTo { principal: Agent, resource: Account, context: { taint: Set<String>, data_touched: Long } };
action "pay" appliesTo { principal: Agent, resource: Account, context: { amount: Long } };
`;

/** The signed Long of a set of labels, and what a JSON double would make of it. */
function longOf(labels: string[]): { exact: bigint; rounded: bigint } {
  const exact = BigInt.asIntN(64, labelsToMask(labels, LABELS));
  return { exact, rounded: BigInt(Number(exact)) };
}

// Sessions whose mask a double cannot carry, plus the boundary cases.
const SESSIONS: string[][] = [
  ['B52', 'LOW'],
  ['B53', 'LOW'],
  ['B62', 'LOW'],
  ['B63', 'LOW'],
  ['B63'],
  ['B53', 'B62', 'B63', 'LOW'],
  ['B52'],
];

/** For each session: a permit on the exact value and, where rounding changes it, a permit on the rounded one. */
function maskPolicies(): string {
  const out: string[] = [];
  for (const [i, labels] of SESSIONS.entries()) {
    const { exact, rounded } = longOf(labels);
    out.push(`@id("exact-${i}") permit (principal, action == Action::"read_file", resource) when { context.data_touched == ${exact} };`);
    if (rounded !== exact && rounded <= (1n << 63n) - 1n)
      out.push(
        `@id("rounded-${i}") permit (principal, action == Action::"read_file", resource) when { context.data_touched == ${rounded} };`,
      );
  }
  return out.join('\n');
}

function snapshotOf(authorizer: Authorizer): PolicySnapshot {
  return {
    watermark: 1,
    digest: '0'.repeat(64),
    sourceCommit: null,
    expiresAt: new Date(Date.now() + 3_600_000),
    config: { version: 1, taint_labels: LABELS, on_expiry: 'keep', registrations: [] } as unknown as LilithConfig,
    entities: [],
    authorizer,
  };
}

const origin: Origin = {
  destination: { address: '10.0.0.1', port: 443, family: 4 },
  pid: null,
  identify: () => ({ spiffeId: AGENT, registration: { selectors: [], groups: [] } as never }),
};

test('the taint mask reaches both engines as the exact signed Long (labels at bits 52, 53, 62, 63)', () => {
  for (const [i, labels] of SESSIONS.entries()) {
    const { exact, rounded } = longOf(labels);
    const long = maskToLong(labelsToMask(labels, LABELS));
    assert.equal(BigInt(long), exact, `maskToLong keeps ${labels.join('+')} exact`);
    assert.equal(typeof long, exact >= -(2n ** 53n) + 1n && exact <= 2n ** 53n - 1n ? 'number' : 'bigint', 'canonical form');
    for (const engine of ENGINES) {
      const authorizer = createAuthorizer({ policies: { 'mask.cedar': maskPolicies() }, schema: SCHEMA, entities: [] }, engine);
      assert.equal(authorizer.engine, engine, 'no fallback');
      const events: AuditEvent[] = [];
      const taint = new TaintSessions();
      taint.or(AGENT, labelsToMask(labels, LABELS));
      const decider = new Decider({ get: () => snapshotOf(authorizer) }, taint, {
        emit: (e) => events.push(e),
        dropped: () => 0,
        close: async () => {},
      });
      const result = decider.decide({
        origin,
        protocol: 'mcp',
        build: () => ({ action: 'read_file', resource: { type: 'Account', id: 'a' }, context: {} }),
        fallback: { action: 'read_file', resource: { type: 'Account', id: 'a' } },
      });
      // Of this session's policies only the one naming the exact value holds; the one naming
      // the rounded value would have, before. (Another session's exact value may equal this
      // session's rounded one: B63 alone is what B63+LOW rounds to.)
      const own = result.policies.filter((p) => p.endsWith(`-${i}`));
      assert.deepEqual(
        { allowed: result.allowed, policies: own, errors: result.errors },
        { allowed: true, policies: [`exact-${i}`], errors: [] },
        `${engine}: session ${labels.join('+')} = ${exact} (a double says ${rounded})`,
      );
      assert.equal(events.length, 1);
      authorizer.dispose();
    }
  }
});

const ENTITIES_JSON = `[
  {"uid": {"type": "Account", "id": "max"}, "attrs": {"balance": 9223372036854775807, "limits": [9007199254740993, -9223372036854775808]}, "parents": []},
  {"uid": {"type": "Account", "id": "odd"}, "attrs": {"balance": 9007199254740993, "limits": []}, "parents": []}
]`;

const PAY_POLICIES = `
@id("max") permit (principal, action == Action::"pay", resource == Account::"max")
  when { resource.balance == 9223372036854775807 && resource.limits.contains(-9223372036854775808) && resource.limits.contains(9007199254740993) };
@id("odd") permit (principal, action == Action::"pay", resource == Account::"odd") when { resource.balance == 9007199254740993 };
@id("amount") permit (principal, action == Action::"pay", resource) when { context.amount == 9007199254740993 };
@id("min") permit (principal, action == Action::"pay", resource) when { context.amount == -9223372036854775808 };
@id("top") permit (principal, action == Action::"pay", resource) when { context.amount == 9223372036854775807 };
`;

function pay(resource: string, contextJson: string): AuthzRequest {
  return {
    principal: { type: 'Agent', id: AGENT },
    action: { type: 'Action', id: 'pay' },
    resource: { type: 'Account', id: resource },
    context: parseJsonLong(contextJson) as AuthzRequest['context'],
  };
}

test('entity attributes and request context read from JSON keep Longs beyond 2^53 exact in both engines', () => {
  const entities = parseJsonLong(ENTITIES_JSON) as Entity[];
  assert.equal(entities[0].attrs.balance, 9223372036854775807n);
  for (const engine of ENGINES) {
    const a = createAuthorizer({ policies: { 'pay.cedar': PAY_POLICIES }, schema: SCHEMA, entities }, engine);
    assert.equal(a.engine, engine);
    const ask = (resource: string, ctx: string) => {
      const d = a.isAuthorized(pay(resource, ctx));
      return { decision: d.decision, reasons: [...d.reasons].sort(), errors: d.errors };
    };
    assert.deepEqual(ask('max', '{"amount": 0}'), { decision: 'allow', reasons: ['max'], errors: [] }, engine);
    assert.deepEqual(ask('odd', '{"amount": 0}'), { decision: 'allow', reasons: ['odd'], errors: [] }, engine);
    // 9007199254740992 is what JSON.parse makes of 2^53 + 1: it must not match.
    assert.deepEqual(ask('none', '{"amount": 9007199254740993}'), { decision: 'allow', reasons: ['amount'], errors: [] }, engine);
    assert.equal(ask('none', '{"amount": 9007199254740992}').decision, 'deny', engine);
    assert.deepEqual(ask('none', '{"amount": -9223372036854775808}'), { decision: 'allow', reasons: ['min'], errors: [] }, engine);
    assert.deepEqual(ask('none', '{"amount": 9223372036854775807}'), { decision: 'allow', reasons: ['top'], errors: [] }, engine);
    // One past the range: a request error (deny) naming the Long, never wrapped to -2^63 or rounded to 2^63 − 1.
    for (const out of ['9223372036854775808', '-9223372036854775809', '18446744073709551615']) {
      const d = a.isAuthorized(pay('none', `{"amount": ${out}}`));
      assert.equal(d.decision, 'deny', `${engine}: ${out}`);
      assert.deepEqual(d.reasons, [], `${engine}: ${out}`);
      assert.ok(
        d.errors.length > 0 && d.errors.every((e) => e.startsWith('request: ')),
        `${engine}: ${out} is a request error: ${d.errors}`,
      );
    }
    a.dispose();
  }
});

test('an entity attribute outside the 64-bit range is refused when the engine is built, in both engines', () => {
  const entities = parseJsonLong(ENTITIES_JSON.replace('9223372036854775807', '9223372036854775808')) as Entity[];
  for (const engine of ENGINES) {
    const a = createAuthorizer({ policies: { 'pay.cedar': PAY_POLICIES }, schema: SCHEMA, entities }, engine);
    const d = a.isAuthorized(pay('max', '{"amount": 0}'));
    assert.equal(d.decision, 'deny', engine);
    assert.ok(d.errors.length > 0, `${engine}: the out-of-range attribute is an error, not a wrapped value`);
    a.dispose();
  }
});

test('stringifyJsonLong: JSON.stringify byte for byte without BigInts; exact digits with them', () => {
  const plain = { a: [1, 2.5, -0, 1e21, 'x"y', null, true], b: { c: undefined, d: 'é\u2028' }, e: new Date(0) };
  assert.equal(stringifyJsonLong(plain), JSON.stringify(plain));
  const exact = { n: 9223372036854775807n, m: [-9223372036854775808n, 9007199254740993n], s: '9007199254740993' };
  const text = stringifyJsonLong(exact);
  assert.equal(text, '{"n":9223372036854775807,"m":[-9223372036854775808,9007199254740993],"s":"9007199254740993"}');
  assert.deepEqual(parseJsonLong(text), exact, 'the reader reads back what the writer wrote');
});

const POLICIES_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../../policies');

/** The bundled policy repository plus a Quota entity whose Long a double cannot carry. */
async function quotaSource(limit: string) {
  const src = await readPolicyDir(POLICIES_DIR);
  const entities = JSON.parse(src.entitiesText) as unknown[];
  const text = JSON.stringify(entities).replace(
    /\]$/,
    `, {"uid": {"type": "Quota", "id": "q"}, "attrs": {"limit": ${limit}}, "parents": []}]`,
  );
  return {
    ...src,
    schema: `${src.schema}\nentity Quota { limit: Long };\n`,
    policies: {
      ...src.policies,
      'quota.cedar': '@id("quota-exact")\nforbid (principal, action, resource) unless { Quota::"q".limit == 9007199254740993 };\n',
    },
    entitiesText: text,
  };
}

test('entities.json → capsule → enforcer: a Long beyond 2^53 stays exact; one outside the 64-bit range is refused by name', async () => {
  const src = await quotaSource('9007199254740993');
  const payload = buildPayload(src, { watermark: 7, now: new Date(), validityMs: 3_600_000 });
  const bytes = encodePayload(payload);
  assert.match(Buffer.from(bytes).toString('utf8'), /"limit":9007199254740993\}/, 'the signed bytes carry the exact digits');
  const read = parsePayload(bytes);
  assert.equal(read.entities[read.entities.length - 1].attrs.limit, 9007199254740993n);
  assert.equal(contentRefusal(read), null, "the enforcer's activation checks take it (cedar-wasm included)");
  const req: AuthzRequest = {
    principal: { type: 'Agent', id: 'spiffe://corp.example/agents/coder' },
    action: { type: 'Action', id: 'read_file' },
    resource: { type: 'MCPServer', id: 'files' },
    context: { taint: [], data_touched: 0, tool: 'read_file', arguments: { path: '/workspace/a' } },
  };
  for (const engine of ENGINES) {
    const a = createAuthorizer(bundleOf(read), engine);
    const d = a.isAuthorized(req);
    assert.ok(!d.reasons.includes('quota-exact'), `${engine}: the exact limit does not trip the forbid: ${JSON.stringify(d)}`);
    assert.deepEqual(d.errors, [], engine);
    a.dispose();
  }
  // A rounded limit (what JSON.parse would have read) trips it: the policy does tell the two apart.
  const rounded = parsePayload(
    encodePayload(buildPayload(await quotaSource('9007199254740992'), { watermark: 7, now: new Date(), validityMs: 3_600_000 })),
  );
  for (const engine of ENGINES) {
    const a = createAuthorizer(bundleOf(rounded), engine);
    assert.ok(a.isAuthorized(req).reasons.includes('quota-exact'), engine);
    a.dispose();
  }

  // Out of range: refused where entities.json is read and where a capsule payload is read.
  for (const out of ['9223372036854775808', '-9223372036854775809']) {
    assert.throws(
      () => parseEntities(entitiesOf(out)),
      (e: Error & { code?: string }) =>
        e.code === 'bad_entities' && /\[0\]\.attrs\.limit is an integer outside the 64-bit Long range/.test(e.message),
    );
    const forged = Buffer.from(bytes).toString('utf8').replace('"limit":9007199254740993', `"limit":${out}`);
    assert.throws(
      () => parsePayload(Buffer.from(forged)),
      (e: Error & { code?: string }) =>
        e.code === 'malformed' && /payload\.entities\[\d+\]\.attrs\.limit is an integer outside the 64-bit Long range/.test(e.message),
    );
  }
  for (const edge of ['9223372036854775807', '-9223372036854775808'])
    assert.equal((parseEntities(entitiesOf(edge))[0].attrs as { limit: bigint }).limit, BigInt(edge));
});

function entitiesOf(limit: string): string {
  return `[{"uid": {"type": "Quota", "id": "q"}, "attrs": {"limit": ${limit}}, "parents": []}]`;
}

test('MCP tool arguments of Long type: exact within the 64-bit range, refused by name outside it', () => {
  const types = new Map([['amount', 'Long' as const]]);
  const args = (text: string) => parseJsonExact(text).value as Record<string, unknown>;
  assert.deepEqual(projectArguments(args('{"amount": 9007199254740993}'), types), { amount: 9007199254740993n });
  assert.deepEqual(projectArguments(args('{"amount": -9223372036854775808}'), types), { amount: -9223372036854775808n });
  assert.deepEqual(projectArguments(args('{"amount": 9223372036854775807}'), types), { amount: 9223372036854775807n });
  for (const out of ['9223372036854775808', '-9223372036854775809', '1e19'])
    assert.throws(
      () => projectArguments(args(`{"amount": ${out}}`), types),
      /tool argument `amount` is an integer outside the 64-bit Long range/,
    );
});
