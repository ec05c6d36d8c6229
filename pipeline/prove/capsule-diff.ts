// The capsule parts the Cedar proof does not encode, diffed: every change to
// lilith.json or entities.json that lets an agent do more than the base let it is
// an escalation that needs an approval, named by a stable key. Changes that only
// narrow (a selector added, a binary removed from the exec allowlist, a classifier
// added) are not reported.
import type { ClassifierRule, LilithConfig, Registration } from '../../capsule/config.js';
import { sortedJsonLong } from '../../cedar/json-long.js';

export interface CapsuleChange {
  /** The file that widened. */
  part: 'lilith.json' | 'entities.json';
  /** Stable key an approval names ({"change": KEY, ...}; a trailing "*" matches a prefix). */
  key: string;
  /** What widened, in words. */
  what: string;
  /**
   * A change of the deployed store's data (an entity or agent with a new or lost
   * ancestor, an entity attribute or tag added, changed or removed): the
   * deployed-store proof decides it.
   */
  store?: true;
  /** The deployed-store entity (uid text) the change is about: store changes and new registrations. */
  entity?: string;
  approved?: { reason: string; source: string };
}

interface EntityJson {
  uid: { type: string; id: string };
  parents?: { type: string; id: string }[];
  attrs?: Record<string, unknown>;
  tags?: Record<string, unknown>;
}

const uid = (u: { type: string; id: string }) => `${u.type}::${JSON.stringify(u.id)}`;

/** A value as the report shows it; the PR author controls it, so it is cut short. */
function shown(v: string | undefined): string {
  if (v === undefined) return '(absent)';
  return v.length > 80 ? `${v.slice(0, 77)}…` : v;
}

/**
 * Attributes and tags added, changed or removed, per entity of entities.json (an
 * entity added or removed counts as its attributes and tags added or removed).
 * Either direction can widen: a permit reads the new value, a forbid erred on the
 * missing one (and Cedar skips an erroring forbid). One key per entity and name,
 * so approving one value approves no other.
 */
function dataChanges(base: EntityJson[], head: EntityJson[], out: CapsuleChange[]): void {
  const byUid = (es: EntityJson[]) => new Map(es.map((e) => [uid(e.uid), e]));
  const b = byUid(base);
  const h = byUid(head);
  for (const e of new Set([...b.keys(), ...h.keys()])) {
    for (const [field, word] of [
      ['attrs', 'attribute'],
      ['tags', 'tag'],
    ] as const) {
      const was = b.get(e)?.[field] ?? {};
      const now = h.get(e)?.[field] ?? {};
      for (const name of new Set([...Object.keys(was), ...Object.keys(now)])) {
        const x = Object.hasOwn(was, name) ? sortedJsonLong(was[name]) : undefined;
        const y = Object.hasOwn(now, name) ? sortedJsonLong(now[name]) : undefined;
        if (x === y) continue;
        out.push({
          part: 'entities.json',
          key: `entities/${e}/${field}/${name}`,
          what: `${e} ${word} ${JSON.stringify(name)}: ${shown(x)} → ${shown(y)}`,
          store: true,
          entity: e,
        });
      }
    }
  }
}

const PROFILE_RANK: Record<string, number> = { strict: 0, standard: 1, jit: 2 };

/** Every ancestor of every entity (transitive), keyed by uid text; agents from registrations join through their groups. */
function ancestors(entities: EntityJson[], registrations: Registration[]): Map<string, Set<string>> {
  const parents = new Map<string, string[]>();
  for (const e of entities) parents.set(uid(e.uid), (e.parents ?? []).map(uid));
  for (const r of registrations) {
    const k = uid({ type: 'Agent', id: r.spiffe_id });
    parents.set(k, [...(parents.get(k) ?? []), ...(r.groups ?? []).map((g) => uid({ type: 'AgentGroup', id: g }))]);
  }
  const out = new Map<string, Set<string>>();
  for (const k of parents.keys()) {
    const seen = new Set<string>();
    const stack = [...(parents.get(k) ?? [])];
    while (stack.length) {
      const p = stack.pop()!;
      if (seen.has(p)) continue;
      seen.add(p);
      stack.push(...(parents.get(p) ?? []));
    }
    out.set(k, seen);
  }
  return out;
}

const added = (base: string[] | undefined, head: string[] | undefined) => (head ?? []).filter((x) => !(base ?? []).includes(x));

function registrationChanges(b: Registration | undefined, h: Registration, out: CapsuleChange[]): void {
  const at = `registrations/${h.spiffe_id}`;
  const push = (k: string, what: string) => out.push({ part: 'lilith.json', key: `${at}/${k}`, what: `agent ${h.spiffe_id}: ${what}` });
  if (!b) {
    out.push({
      part: 'lilith.json',
      key: `${at}/new`,
      what: `agent ${h.spiffe_id}: new registration (selectors ${h.selectors.join(', ')})`,
      entity: uid({ type: 'Agent', id: h.spiffe_id }),
    });
    return;
  }
  // Selectors are ANDed: one the base required and the head does not lets more processes be this agent.
  for (const s of b.selectors.filter((x) => !h.selectors.includes(x))) push(`selector-removed/${s}`, `selector ${s} no longer required`);
  if ((PROFILE_RANK[h.profile ?? 'strict'] ?? 3) > (PROFILE_RANK[b.profile ?? 'strict'] ?? 3))
    push('profile', `seccomp profile ${b.profile ?? 'strict'} → ${h.profile}`);
  if (h.jit && !b.jit) push('jit', 'anonymous executable memory allowed (jit)');
  for (const p of added(b.filesystem?.read_write, h.filesystem?.read_write)) push(`filesystem.read_write/${p}`, `may write ${p}`);
  for (const p of added(b.filesystem?.read_only, h.filesystem?.read_only)) push(`filesystem.read_only/${p}`, `may read ${p}`);
  for (const l of added(b.allow_degraded, h.allow_degraded)) push(`allow_degraded/${l}`, `may run without ${l}`);
}

/**
 * The head rule sets at least the session-mask bits the base rule set, on the same
 * trigger. Labels are compared by bit through each side's table: a label renamed
 * consistently (same bit) sets the same taint.
 */
function sameClassifier(a: ClassifierRule, aLabels: Record<string, number>, b: ClassifierRule, bLabels: Record<string, number>): boolean {
  const bits = new Set(b.set.map((l) => bLabels[l]));
  return JSON.stringify(a.when) === JSON.stringify(b.when) && a.set.every((l) => bits.has(aLabels[l]));
}

/** Widening changes from base to head (both already validated); sorted by key. */
export function capsuleChanges(
  base: { config: LilithConfig; entities: EntityJson[] },
  head: { config: LilithConfig; entities: EntityJson[] },
): CapsuleChange[] {
  const out: CapsuleChange[] = [];
  const b = base.config;
  const h = head.config;
  const cfg = (key: string, what: string) => out.push({ part: 'lilith.json', key, what });

  if (b.trust_domain !== h.trust_domain) cfg('trust_domain', `trust domain ${b.trust_domain} → ${h.trust_domain}`);
  if (h.on_expiry === 'keep' && b.on_expiry !== 'keep') cfg('on_expiry', 'an expired capsule keeps being enforced (on_expiry keep)');

  const baseRegs = new Map<string, Registration>(b.registrations.map((r) => [r.spiffe_id, r]));
  for (const r of h.registrations) registrationChanges(baseRegs.get(r.spiffe_id), r, out);

  // A classifier removed or weakened sets fewer labels: less taint, fewer forbids fire.
  for (const c of b.classifiers) {
    const now = h.classifiers.find((x) => x.id === c.id);
    if (!now) cfg(`classifiers/${c.id}`, `classifier ${c.id} removed (it set ${c.set.join(', ')})`);
    else if (!sameClassifier(c, b.taint_labels, now, h.taint_labels))
      cfg(`classifiers/${c.id}`, `classifier ${c.id} changed: ${JSON.stringify(c)} → ${JSON.stringify(now)}`);
  }
  for (const [label, bit] of Object.entries(b.taint_labels))
    if (!Object.hasOwn(h.taint_labels, label) && !Object.values(h.taint_labels).includes(bit))
      cfg(`taint_labels/${label}`, `taint label ${label} (bit ${bit}) removed`);

  for (const [alias, u] of Object.entries(h.upstreams)) {
    const was = b.upstreams[alias];
    if (!was) cfg(`upstreams/${alias}`, `new upstream ${alias} (${u.kind} at ${u.address})`);
    else if (was.address !== u.address || was.kind !== u.kind)
      cfg(`upstreams/${alias}`, `upstream ${alias} now ${u.kind} at ${u.address} (was ${was.kind} at ${was.address})`);
  }

  const bk = b.kernel;
  const hk = h.kernel;
  for (const x of added(bk.exec_allowlist, hk.exec_allowlist)) cfg(`kernel.exec_allowlist/${x}`, `binary ${x} allowlisted for exec`);
  for (const x of (bk.deny_socket_families ?? []).filter((f) => !(hk.deny_socket_families ?? []).includes(f)))
    cfg(`kernel.deny_socket_families/${x}`, `socket family ${x} no longer denied`);
  for (const x of added(bk.unix_allowlist, hk.unix_allowlist))
    cfg(`kernel.unix_allowlist/${x}`, `unix socket ${JSON.stringify(x)} allowlisted`);
  if (hk.heartbeat_ttl_ms > bk.heartbeat_ttl_ms)
    cfg('kernel.heartbeat_ttl_ms', `heartbeat TTL ${bk.heartbeat_ttl_ms} → ${hk.heartbeat_ttl_ms} ms (fails closed later)`);
  if (hk.cgroup_root !== bk.cgroup_root) cfg('kernel.cgroup_root', `agent cgroup subtree ${bk.cgroup_root} → ${hk.cgroup_root}`);
  for (const k of ['max_header_bytes', 'max_body_bytes', 'idle_timeout_ms'] as const)
    if (h.proxy[k] > b.proxy[k]) cfg(`proxy.${k}`, `proxy ${k} ${b.proxy[k]} → ${h.proxy[k]}`);

  // entities.json and registrations as one store: an entity (or agent) with an
  // ancestor the base did not give it, or without one the base gave it (a forbid on
  // `principal in Group::"quarantine"` no longer applies).
  const before = ancestors(base.entities, b.registrations);
  const after = ancestors(head.entities, h.registrations);
  const none = new Set<string>();
  for (const e of new Set([...before.keys(), ...after.keys()])) {
    const had = before.get(e) ?? none;
    const has = after.get(e) ?? none;
    const viaGroups = e.startsWith('Agent::');
    const edge = (a: string, rel: 'in' | 'not in', what: string) =>
      out.push({
        part: viaGroups ? 'lilith.json' : 'entities.json',
        key: `${viaGroups ? 'registrations' : 'entities'}/${e} ${rel} ${a}`,
        what,
        store: true,
        entity: e,
      });
    for (const a of has) if (!had.has(a)) edge(a, 'in', `${e} is now in ${a}`);
    for (const a of had) if (!has.has(a)) edge(a, 'not in', `${e} is no longer in ${a}`);
  }
  dataChanges(base.entities, head.entities, out);
  return out.sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
}
