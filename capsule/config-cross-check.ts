// The checks that tie lilith.json to the rest of a capsule: the taint labels the
// policies test and the zones and groups it names must exist. Shared by CI
// (`lilith validate`, which places each finding at a file, line and column) and
// the enforcer (which refuses a signed capsule that fails them, invalid_config),
// so both sides judge the same capsule the same way.
import type { ConfigIssue } from './config-check.js';
import type { LilithConfig } from './config.js';

const CONFIG_FILE = 'lilith.json';
const ENTITIES_FILE = 'entities.json';

export interface TaintLabelIssue {
  /** The @id of the policy (or invariant) that tests the label. */
  policyId: string;
  /** The label, as the policy writes it. */
  label: string;
  message: string;
}

interface EntityLike {
  uid?: { type?: string; id?: string };
}

function isContextTaint(e: unknown): boolean {
  const dot = (e as { '.'?: { left?: { Var?: string }; attr?: string } } | null)?.['.'];
  return dot?.attr === 'taint' && dot.left?.Var === 'context';
}

/** String literals a policy (Cedar JSON) compares `context.taint` against (contains/containsAny/containsAll/==/!=). */
export function taintLabelsUsed(est: unknown): Set<string> {
  const found = new Set<string>();
  const literals = (e: unknown) => {
    const v = e as { Value?: unknown; Set?: unknown[] } | null;
    if (typeof v?.Value === 'string') found.add(v.Value);
    if (Array.isArray(v?.Set)) for (const x of v.Set) literals(x);
  };
  const walk = (node: unknown) => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (typeof node !== 'object' || node === null) return;
    for (const [op, arg] of Object.entries(node)) {
      const bin = arg as { left?: unknown; right?: unknown } | null;
      if (['contains', 'containsAny', 'containsAll', '==', '!='].includes(op) && bin && typeof bin === 'object') {
        if (isContextTaint(bin.left)) literals(bin.right);
        if (isContextTaint(bin.right)) literals(bin.left);
      }
      walk(arg);
    }
  };
  walk(est);
  return found;
}

/**
 * A taint label named in a policy but missing from lilith.json can never be in
 * context.taint, so a forbid guarded by it silently never fires: always an error.
 * `policies` carry Cedar's JSON form; `config` must already pass checkConfig.
 */
export function unknownTaintLabels(policies: Iterable<{ id: string; json: unknown }>, config: LilithConfig): TaintLabelIssue[] {
  const known = new Set(Object.keys(config.taint_labels));
  const issues: TaintLabelIssue[] = [];
  for (const p of policies) {
    for (const label of taintLabelsUsed(p.json)) {
      if (known.has(label)) continue;
      issues.push({
        policyId: p.id,
        label,
        message: `policy \`${p.id}\` tests context.taint for "${label}", which is not a taint label in ${CONFIG_FILE} (${[...known].join(', ')}); it can never match`,
      });
    }
  }
  return issues;
}

/**
 * Config rules that need entities.json: the zones classifiers name and the groups
 * registrations put agents in must be entities (an undefined group silently grants
 * nothing, an undefined zone makes every upstream "not in zone"). `config` must
 * already pass checkConfig; paths are JSON pointers into lilith.json.
 */
export function crossCheckConfig(config: LilithConfig, entities: readonly unknown[]): ConfigIssue[] {
  const defined = new Set<string>();
  for (const e of entities as EntityLike[]) {
    if (typeof e?.uid?.type === 'string' && typeof e.uid.id === 'string') defined.add(JSON.stringify([e.uid.type, e.uid.id]));
  }
  const has = (type: string, id: string) => defined.has(JSON.stringify([type, id]));
  const issues: ConfigIssue[] = [];
  config.classifiers.forEach((rule, i) => {
    const zone = rule.when.upstream_not_in_zone;
    if (zone !== undefined && !has('Zone', zone))
      issues.push({ path: `/classifiers/${i}/when/upstream_not_in_zone`, message: `Zone "${zone}" is not defined in ${ENTITIES_FILE}` });
  });
  config.registrations.forEach((reg, i) => {
    (reg.groups ?? []).forEach((g, j) => {
      if (!has('AgentGroup', g))
        issues.push({ path: `/registrations/${i}/groups/${j}`, message: `AgentGroup "${g}" is not defined in ${ENTITIES_FILE}` });
    });
  });
  return issues;
}
