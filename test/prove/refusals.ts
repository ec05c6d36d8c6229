// Every Cedar construct the validator (cedar-wasm, strict) accepts but the prover
// does not encode, as a policy over REFUSAL_SCHEMA (or a schema of its own). The
// gate must refuse each (exit 2) naming the policy and the construct; docs/prove.md
// "What the prover refuses" has one row per entry.

export const REFUSAL_SCHEMA = `
entity Group in [Group] { rank: Long };
entity User in [Group] { level: Long, addr: ipaddr, name?: String };
entity Doc { owner: User };
type Rec = { a: Long };
type Ctx = {
  n: Long, b: Bool, s: String, ls: Set<Long>, meta: Rec,
  addr: ipaddr, amount: decimal, at: datetime, dur: duration,
  recs: Set<Rec>, sets: Set<Set<Long>>, act: Action, acts: Set<Action>,
};
action "read" appliesTo { principal: [User], resource: [Doc], context: Ctx };
action "write" appliesTo { principal: [User], resource: [Doc], context: Ctx };
`;

export interface Refusal {
  /** Also the policy id. */
  id: string;
  /** The `when` condition of a permit on Action::"read". */
  when: string;
  /** What the refusal message must say. */
  construct: RegExp;
  /** A schema of its own. */
  schema?: string;
}

/** A schema whose Doc declares `decl` (e.g. its tags). */
const ownDoc = (decl: string) => `
entity User { level: Long };
entity Doc ${decl};
action "read" appliesTo { principal: [User], resource: [Doc], context: { s: String } };
`;

export const REFUSALS: Refusal[] = [
  { id: 'ip-call', when: 'ip("10.0.0.1").isLoopback()', construct: /function or extension isLoopback\(\)/ },
  { id: 'ip-attr', when: 'context.addr.isInRange(ip("10.0.0.0/8"))', construct: /function or extension isInRange\(\)/ },
  { id: 'ip-entity-attr', when: 'context.addr == principal.addr', construct: /extension type ipaddr/ },
  { id: 'decimal-call', when: 'context.amount.lessThan(decimal("2.5"))', construct: /function or extension lessThan\(\)/ },
  { id: 'datetime-compare', when: 'context.at < datetime("2024-01-01")', construct: /extension type datetime/ },
  { id: 'duration-compare', when: 'context.dur > duration("1h")', construct: /extension type duration/ },
  {
    id: 'datetime-offset',
    when: 'context.at.offset(duration("1h")) > datetime("2024-01-01")',
    construct: /function or extension offset\(\)/,
  },
  { id: 'set-of-records', when: 'context.recs.contains({a: 1})', construct: /attribute recs of type Set<\{a: long\}>/ },
  { id: 'set-of-sets', when: 'context.sets.contains([1])', construct: /attribute sets of type Set<Set<long>>/ },
  { id: 'action-attr', when: 'context.act == action', construct: /attribute act of type Action/ },
  { id: 'action-set-attr', when: 'action in context.acts', construct: /attribute acts of type Set<Action>/ },
  { id: 'if-records', when: '(if context.b then context.meta else {a: 2}).a == 1', construct: /if-then-else yielding records/ },
  { id: 'if-actions', when: '(if context.b then action else action) == Action::"read"', construct: /if-then-else yielding actions/ },
  { id: 'high-code-point', when: 'context.s == "\u{E0001}"', construct: /code point U\+E0001 \(above U\+2FFFF\)/ },
  { id: 'like-high-code-point', when: 'context.s like "*\u{E0001}*"', construct: /code point U\+E0001 \(above U\+2FFFF\)/ },
  {
    id: 'tag-records',
    when: 'resource.hasTag("t") && resource.getTag("t").a == 1',
    construct: /entity tags of type \{a: long\} \(getTag on Doc/,
    schema: ownDoc('tags { a: Long }'),
  },
  {
    id: 'tag-extension',
    when: 'resource.hasTag("t") && resource.hasTag("u") && resource.getTag("t") == resource.getTag("u")',
    construct: /entity tags of extension type ipaddr \(getTag on Doc\)/,
    schema: ownDoc('tags ipaddr'),
  },
  {
    id: 'tag-set-of-records',
    when: 'resource.hasTag("t") && resource.getTag("t").isEmpty()',
    construct: /entity tags of type Set<\{a: long\}> \(getTag on Doc/,
    schema: ownDoc('tags Set<{ a: Long }>'),
  },
];

export function refusalPolicy(r: Refusal): string {
  return `@id("${r.id}")\npermit (principal, action == Action::"read", resource) when { ${r.when} };\n`;
}
