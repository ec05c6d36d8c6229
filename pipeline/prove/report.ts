// The gate's result: a stable JSON document (no timings, sorted lists) whose
// sha256 `lilith sign --proof` records as the capsule's proof_digest.
import { stringifyJsonLong } from '../../cedar/json-long.js';
import { createHash } from 'node:crypto';
import type { CapsuleChange } from './capsule-diff.js';
import type { Counterexample } from './counterexample.js';

export const REPORT_FORMAT = 'lilith-proof/1';

export type Verdict = 'proven' | 'approved' | 'escalation' | 'violation';

export interface SideInfo {
  label: string;
  commit?: string;
  /** sha256 over the policy files that were proved (path NUL text NUL, sorted). */
  digest: string;
}

/**
 * What accepts an escalation: every part named here must be approved.
 * - `action`: the approvals/*.json entry for a policy escalation (the environment's
 *   action, namespace-qualified unless un-namespaced, and its principal and resource type);
 * - `changes`: a deployed-store escalation after entities.json or the registrations
 *   changed: the key of every change to the deployed store's data (`{"change": KEY}`
 *   each); `witness` the ones the witness's entities show.
 */
export interface ApprovalNeeded {
  action?: { action: string; principal_type: string; resource_type: string };
  changes?: string[];
  witness?: string[];
}

export interface EscalationFinding {
  env: string;
  approved?: { reason: string; source: string };
  /** The approval that would accept it. */
  approval: ApprovalNeeded;
  counterexample: Counterexample;
  /**
   * The context the base decided, when it differs from the counterexample's (the
   * schemas differ): head-only attributes dropped, base-only ones with the
   * values that make the base deny (context-view.ts).
   */
  baseContext?: Counterexample['context'];
  /** Deployed-store findings: the base store's part the base decided over, when it differs from the counterexample's entities (the head store's). */
  baseEntities?: Counterexample['entities'];
  /** The cedar-wasm re-check: head allows (by these permits), base denies. */
  recheck: { head: 'allow'; base: 'deny'; headReasons: string[]; baseErrors: string[] };
}

/**
 * Which entity stores non-escalation holds for: `every` — any store (the Cedar
 * proof); `deployed` — entities.json with the registrations as group-membership
 * entities, base store against head store.
 */
export interface EntityStores {
  every: 'holds' | 'escalation';
  deployed: 'holds' | 'escalation';
  /** The deployed store differs between base and head (hierarchy, attributes or registered agents). */
  changed: boolean;
  /** Hierarchy changes (capsule-diff keys) proven not to widen over the deployed store. */
  provenChanges?: string[];
}

/**
 * One invariant, proved over every entity store and, when that fails, over the
 * deployed store (entities.json + registrations, head side):
 * - `holds` — for every store (so for the deployed one too);
 * - `holds-deployed-only` — for the deployed store, not for every store:
 *   `everyStore` is a store (and request) where it fails, re-checked; a later
 *   change to entities.json or the registrations can break it, and the gate
 *   checks it again then;
 * - `violated` — for the deployed store too (`store: 'deployed'`; its witness is
 *   the part of the deployed store the request observes). Fails the gate; cannot
 *   be approved.
 */
export interface InvariantResult {
  id: string;
  file: string;
  effect: 'permit' | 'forbid';
  result: 'holds' | 'holds-deployed-only' | 'violated';
  /** Where a violation was found: the deployed store (absent: some store). */
  store?: 'deployed';
  env?: string;
  counterexample?: Counterexample;
  /** holds-deployed-only: the every-store counterexample. */
  everyStore?: { env: string; counterexample: Counterexample };
}

export interface Warning {
  kind: 'dead' | 'shadowed' | 'may-error';
  policy: string;
  file: string;
  detail: string;
}

export interface ProofReport {
  format: typeof REPORT_FORMAT;
  verdict: Verdict;
  base: SideInfo;
  head: SideInfo;
  solver: { name: 'cvc5'; version: string; jobs: number };
  assumptions: string[];
  environments: string[];
  /** Escalations over every entity store. */
  escalations: EscalationFinding[];
  entityStores: EntityStores;
  /** Escalations over the deployed store, witnessed with each side's store. */
  storeEscalations: EscalationFinding[];
  /** Widening changes to lilith.json / entities.json the proof does not encode (capsule-diff.ts); each needs an approval. */
  capsule: CapsuleChange[];
  invariants: InvariantResult[];
  warnings: Warning[];
}

export function digestFiles(files: Record<string, string>): string {
  const h = createHash('sha256');
  for (const k of Object.keys(files).sort()) h.update(k).update('\0').update(files[k]).update('\0');
  return h.digest('hex');
}

/** Canonical JSON text of the report (what gets written and hashed). */
export function reportJson(r: ProofReport): string {
  // Witness Longs beyond 2^53 are BigInts, written as their exact digits.
  return stringifyJsonLong(r, 2) + '\n';
}

export function reportDigest(r: ProofReport): string {
  return createHash('sha256').update(reportJson(r)).digest('hex');
}

export function verdictOf(escalations: EscalationFinding[], invariants: InvariantResult[], capsule: CapsuleChange[] = []): Verdict {
  if (invariants.some((i) => i.result === 'violated')) return 'violation';
  if (escalations.some((e) => !e.approved) || capsule.some((c) => !c.approved)) return 'escalation';
  if (escalations.length || capsule.length) return 'approved';
  return 'proven';
}

export function exitCodeOf(v: Verdict): number {
  return v === 'proven' || v === 'approved' ? 0 : 1;
}
