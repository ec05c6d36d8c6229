// Verifier: properties as pure functions returning the formula to refute.
// Each property HOLDS iff its formula is unsat under the assumptions.
import type { CompiledPolicy } from './compiler.js';
import type { CompiledSet } from './symbolic-authorizer.js';
import { and, not } from './smt.js';

/** head ⇒ base: a request head allows and base denies. */
export function escalation(head: CompiledSet, base: CompiledSet | undefined): string {
  // The same term on both sides (same policies, same environment): nothing to ask.
  if (base && base.auth === head.auth) return 'false';
  return and(head.auth, not(base ? base.auth : 'false'));
}

/** The head set allows something the invariant forbids (forbid), or denies something it requires (permit). */
export function invariantBreach(head: CompiledSet, inv: CompiledPolicy): string {
  return inv.effect === 'forbid' ? and(head.auth, inv.sat) : and(inv.sat, not(head.auth));
}

/** The policy matches some request (negation: dead policy). */
export function matches(p: CompiledPolicy): string {
  return p.sat;
}

/** The permit matches a request no forbid overrides (negation: shadowed permit). */
export function effective(p: CompiledPolicy, set: CompiledSet): string {
  return and(p.sat, not(set.forbids));
}

/** Evaluating the policy raises an error for some request. */
export function mayError(p: CompiledPolicy): string {
  return p.err;
}
