// Policy JSON with its Long literals exact: a proof over a rounded literal is a
// proof of another policy. The markers come from cedar/long-literals.ts; here each
// becomes its BigInt, and `neg` of a marker is folded back into one literal.
import { LongLiteralError, markLongLiterals } from '../../cedar/long-literals.js';
import type { NamedPolicy } from '../../cedar/policy-set.js';
import { UnsupportedError } from './smt.js';

/** `p` with every Long literal beyond ±(2^53 − 1) in its JSON a BigInt; `p` itself when it has none. */
export function exactPolicy(p: NamedPolicy): NamedPolicy {
  let marked: ReturnType<typeof markLongLiterals>;
  try {
    marked = markLongLiterals(p);
  } catch (err) {
    if (err instanceof LongLiteralError) throw new UnsupportedError(`unsupported: ${err.message}`);
    throw err;
  }
  const { bigs } = marked;
  if (bigs.size === 0) return p;
  const placed = new Set<string>();
  const json = place(marked.json, bigs, placed) as NamedPolicy['json'];
  if (placed.size !== bigs.size) throw new UnsupportedError(`unsupported: policy ${p.id}: a large Long literal outside an expression`);
  return { ...p, json };
}

function place(v: unknown, bigs: Map<string, bigint>, placed: Set<string>): unknown {
  if (Array.isArray(v)) return v.map((x) => place(x, bigs, placed));
  if (!v || typeof v !== 'object') return v;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length === 1 && keys[0] === 'Value' && typeof o.Value === 'string' && bigs.has(o.Value)) {
    placed.add(o.Value);
    return { Value: bigs.get(o.Value)! };
  }
  if (keys.length === 1 && keys[0] === 'neg') {
    const inner = place((o.neg as { arg?: unknown })?.arg, bigs, placed) as { Value?: unknown } | undefined;
    // -<digits> is one literal in Cedar (so -2^63 is one); a neg of a safe literal stays a neg.
    if (inner && typeof inner.Value === 'bigint') return { Value: -inner.Value };
  }
  const out: Record<string, unknown> = {};
  for (const k of keys)
    Object.defineProperty(out, k, { value: place(o[k], bigs, placed), enumerable: true, writable: true, configurable: true });
  return out;
}
