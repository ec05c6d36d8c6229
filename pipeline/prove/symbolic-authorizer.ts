// Stage 3 (authorizer): a policy set → per-policy satisfaction/error terms and
// the authorization term: (∃ permit satisfied) ∧ ¬(∃ forbid satisfied).
import type { NamedPolicy } from '../../cedar/policy-set.js';
import type { Compiler, CompiledPolicy } from './compiler.js';
import { and, not, or, TRUE } from './smt.js';

export interface CompiledSet {
  policies: CompiledPolicy[];
  /** Some permit satisfied. */
  permits: string;
  /** Some forbid satisfied. */
  forbids: string;
  auth: string;
}

export function compileSet(compiler: Compiler, policies: NamedPolicy[]): CompiledSet {
  const compiled = policies.map((p) => compiler.compilePolicy(p.id, p.json));
  return fromCompiled(compiled);
}

export function fromCompiled(compiled: CompiledPolicy[]): CompiledSet {
  const permits = or(...compiled.filter((p) => p.effect === 'permit').map((p) => p.sat));
  const forbids = or(...compiled.filter((p) => p.effect === 'forbid').map((p) => p.sat));
  return { policies: compiled, permits, forbids, auth: and(permits, not(forbids)) };
}

/** Replaces each policy's terms by named definitions so queries reference them cheaply. */
export function nameTerms(set: CompiledSet, prefix: string, define: (name: string, body: string) => string): CompiledSet {
  // Indices, not ids, name the definitions: ids may hold any character.
  const policies = set.policies.map((p, i) => ({
    ...p,
    sat: define(`${prefix}.sat.${i}`, p.sat),
    err: define(`${prefix}.err.${i}`, p.err),
  }));
  const named = fromCompiled(policies);
  return { ...named, auth: define(`${prefix}.auth`, named.auth) };
}

/** The set as decided only for requests `admit` holds of (others are denied): the base for requests its schema rejects. */
export function admitted(set: CompiledSet, admit: string, define: (name: string, body: string) => string): CompiledSet {
  return admit === TRUE ? set : { ...set, auth: define('base.auth.admitted', and(admit, set.auth)) };
}
