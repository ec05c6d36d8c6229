// The capsule's classifier rules compiled for one snapshot: which taint bits a
// tool call, an upstream, or a response's content sets.
import type { ClassifierRule, LilithConfig } from '../../../capsule/config.js';
import type { Entity, EntityUid } from '../../../cedar/types.js';
import { detect, mayDetectInJson, type DetectorName } from './detectors.js';
import { labelsToMask } from './mask.js';

/** `*` any run of characters (including `/`), `?` exactly one; everything else literal. */
export function globToRegExp(glob: string): RegExp {
  let re = '^';
  for (const ch of glob) {
    if (ch === '*') re += '[\\s\\S]*';
    else if (ch === '?') re += '[\\s\\S]';
    else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(re + '$');
}

const key = (uid: EntityUid) => `${uid.type}::${JSON.stringify(uid.id)}`;

/** Transitive parents per entity, from the capsule's static entities. */
export function ancestorIndex(entities: Entity[]): Map<string, Set<string>> {
  const parents = new Map<string, EntityUid[]>();
  for (const e of entities) parents.set(key(e.uid), e.parents ?? []);
  const memo = new Map<string, Set<string>>();
  const visit = (k: string, seen: Set<string>): Set<string> => {
    const done = memo.get(k);
    if (done) return done;
    const out = new Set<string>();
    if (seen.has(k)) return out; // a cycle: stop (the pipeline rejects these anyway)
    seen.add(k);
    for (const p of parents.get(k) ?? []) {
      const pk = key(p);
      out.add(pk);
      for (const a of visit(pk, seen)) out.add(a);
    }
    memo.set(k, out);
    return out;
  };
  for (const k of parents.keys()) visit(k, new Set());
  return memo;
}

interface ToolRule {
  tool: string;
  argument?: string;
  glob?: RegExp;
  bits: bigint;
}

export class Classifiers {
  readonly #tools: ToolRule[] = [];
  readonly #zones: Array<{ zone: string; bits: bigint }> = [];
  readonly #detectors: Array<{ name: DetectorName; bits: bigint }> = [];
  readonly #ancestors: Map<string, Set<string>>;

  constructor(config: LilithConfig, entities: Entity[]) {
    this.#ancestors = ancestorIndex(entities);
    for (const rule of config.classifiers ?? []) this.#add(rule, config);
  }

  #add(rule: ClassifierRule, config: LilithConfig): void {
    const bits = labelsToMask(rule.set, config.taint_labels);
    const w = rule.when;
    if (w.tool !== undefined)
      this.#tools.push({ tool: w.tool, argument: w.argument, glob: w.glob !== undefined ? globToRegExp(w.glob) : undefined, bits });
    else if (w.upstream_not_in_zone !== undefined) this.#zones.push({ zone: w.upstream_not_in_zone, bits });
    else if (w.response_detector !== undefined) this.#detectors.push({ name: w.response_detector, bits });
  }

  /** Bits a permitted tool call brings in, from the tool name and its arguments. */
  toolBits(tool: string, args: unknown): bigint {
    let bits = 0n;
    for (const r of this.#tools) {
      if (r.tool !== tool) continue;
      if (r.argument === undefined) {
        bits |= r.bits;
        continue;
      }
      const value = args && typeof args === 'object' ? (args as Record<string, unknown>)[r.argument] : undefined;
      if (typeof value === 'string' && (!r.glob || r.glob.test(value))) bits |= r.bits;
    }
    return bits;
  }

  inZone(resource: EntityUid, zone: string): boolean {
    return this.#ancestors.get(key(resource))?.has(key({ type: 'Zone', id: zone })) ?? false;
  }

  /** Remembered upstreamBits per resource (a snapshot's entities never change). */
  readonly #upstreamMemo = new Map<string, bigint>();
  /** The same, by uid object: a relay reuses one while a connection names the same resource (uids are never mutated). */
  readonly #upstreamByUid = new WeakMap<EntityUid, bigint>();

  /** Bits for data arriving from `resource` (the decided Host, Endpoint or MCPServer). */
  upstreamBits(resource: EntityUid): bigint {
    if (this.#zones.length === 0) return 0n;
    let bits = this.#upstreamByUid.get(resource);
    if (bits !== undefined) return bits;
    // Not key(): no JSON escaping needed here (a type name holds no NUL, so the first one ends it).
    const k = `${resource.type}\0${resource.id}`;
    bits = this.#upstreamMemo.get(k);
    if (bits !== undefined) {
      this.#upstreamByUid.set(resource, bits);
      return bits;
    }
    bits = 0n;
    for (const z of this.#zones) if (!this.inZone(resource, z.zone)) bits |= z.bits;
    if (this.#upstreamMemo.size < 4096) this.#upstreamMemo.set(k, bits);
    this.#upstreamByUid.set(resource, bits);
    return bits;
  }

  get hasDetectors(): boolean {
    return this.#detectors.length > 0;
  }

  /** False when responseBits is 0 for JSON.stringify of every value in the JSON text `json` (it need not be parsed). */
  mayMatchJson(json: string): boolean {
    for (const d of this.#detectors) if (mayDetectInJson(d.name, json)) return true;
    return false;
  }

  /** Bits for content that flowed back to the agent. */
  responseBits(text: string): bigint {
    let bits = 0n;
    for (const d of this.#detectors) if ((bits === 0n || (bits & d.bits) !== d.bits) && detect(d.name, text)) bits |= d.bits;
    return bits;
  }
}

const cache = new WeakMap<object, Classifiers>();

/** One compiled classifier set per snapshot (keyed by the snapshot object). */
export function classifiersFor(snapshot: { config: LilithConfig; entities: Entity[] }): Classifiers {
  let c = cache.get(snapshot);
  if (!c) {
    c = new Classifiers(snapshot.config, snapshot.entities);
    cache.set(snapshot, c);
  }
  return c;
}
