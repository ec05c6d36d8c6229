// Resolves a process to its SPIFFE ID from the capsule's registrations.
// A registration matches when all its selectors match. Among matches the most
// specific wins: the one whose selectors imply every other match's selectors.
// Without such a winner the identity is ambiguous and the process is unknown
// (deny); `findAmbiguities` reports those pairs at `lilith validate` time.
import {
  parseSelector,
  selectorImplies,
  selectorMatches,
  selectorsCompatible,
  type ParsedSelector,
  type ProcessFacts,
} from './selectors.js';

/** What the registry needs of a registration; lilith.json's carries more (groups, profile, …). */
export interface Registered {
  spiffe_id: string;
  /** SPIRE-style selectors, all of which must match (AND). */
  selectors: string[];
}

export interface CompiledRegistration<R extends Registered = Registered> {
  registration: R;
  selectors: ParsedSelector[];
}

export interface ResolvedIdentity<R extends Registered = Registered> {
  spiffeId: string;
  registration: R;
}

export function compileRegistrations<R extends Registered>(registrations: R[]): CompiledRegistration<R>[] {
  return registrations.map((registration) => ({ registration, selectors: registration.selectors.map(parseSelector) }));
}

/** Every selector of `b` is implied by some selector of `a`: a is at least as specific as b. */
function atLeastAsSpecific(a: CompiledRegistration, b: CompiledRegistration): boolean {
  return b.selectors.every((sb) => a.selectors.some((sa) => selectorImplies(sa, sb)));
}

export function resolveIdentity<R extends Registered>(
  facts: ProcessFacts,
  registrations: CompiledRegistration<R>[],
): ResolvedIdentity<R> | null {
  const matches = registrations.filter((r) => r.selectors.length > 0 && r.selectors.every((s) => selectorMatches(s, facts)));
  if (matches.length === 0) return null;
  const winner = matches.find((m) =>
    matches.every((other) => other === m || (atLeastAsSpecific(m, other) && !atLeastAsSpecific(other, m))),
  );
  if (!winner) return null;
  return { spiffeId: winner.registration.spiffe_id, registration: winner.registration };
}

/** Pairs of registrations some process could match both of, with neither more specific. */
export function findAmbiguities(registrations: CompiledRegistration[]): string[] {
  const problems: string[] = [];
  for (let i = 0; i < registrations.length; i++) {
    for (let j = i + 1; j < registrations.length; j++) {
      const a = registrations[i];
      const b = registrations[j];
      const coMatch = a.selectors.every((sa) => b.selectors.every((sb) => selectorsCompatible(sa, sb)));
      if (!coMatch) continue;
      const aWins = atLeastAsSpecific(a, b) && !atLeastAsSpecific(b, a);
      const bWins = atLeastAsSpecific(b, a) && !atLeastAsSpecific(a, b);
      if (!aWins && !bWins) {
        problems.push(
          `registrations ${a.registration.spiffe_id} [${a.registration.selectors.join(', ')}] and ` +
            `${b.registration.spiffe_id} [${b.registration.selectors.join(', ')}] can match the same process and neither is more specific`,
        );
      }
    }
  }
  return problems;
}
