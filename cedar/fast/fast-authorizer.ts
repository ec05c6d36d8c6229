// The compiled engine: policies compiled once per activation, indexed by
// action × principal type × resource type, decided with Cedar's semantics.
import { splitPolicies } from '../policy-set.js';
import type { Authorizer, AuthzRequest, Decision, PolicyBundle } from '../types.js';
import { compilePolicy, type CompiledPolicy, type ScopeConstraint } from './compile.js';
import { EntData, Store } from './runtime.js';
import { allActions, buildSchema, isActionType, type ActionInfo, type EntityTypeInfo, type SchemaModel } from './schema.js';
import { shapeCheck, type ShapeCheck } from './shape-check.js';
import { RequestError, conform, parseEntity, parseUid } from './request-conformance.js';
import { EUid, EvalError, eq, eqUid, type Value } from './values.js';

/** Policies that can apply to one (action, principal type, resource type). */
interface Bucket {
  /** Every policy of the bucket (for counts). */
  policies: CompiledPolicy[];
  /** Policies not pinned to one resource. */
  any: CompiledPolicy[];
  /** `resource == T::"id"` policies, by id: a request evaluates only its resource's. */
  byResource: Map<string, CompiledPolicy[]>;
}

const NONE: CompiledPolicy[] = [];
/** Shared by decisions without reasons or errors; frozen so no caller can alter another decision. */
const EMPTY = Object.freeze([]) as unknown as string[];

function makeBucket(policies: CompiledPolicy[]): Bucket {
  const any: CompiledPolicy[] = [];
  const byResource = new Map<string, CompiledPolicy[]>();
  for (const p of policies) {
    if (p.resource.op === '==') {
      const list = byResource.get(p.resource.entity.id);
      if (list) list.push(p);
      else byResource.set(p.resource.entity.id, [p]);
    } else any.push(p);
  }
  return { policies, any, byResource };
}

interface ActionEntry {
  info: ActionInfo;
  ctxCheck: ShapeCheck;
  /** principal type → resource type → bucket. */
  byType: Map<string, Map<string, Bucket>>;
}

function scopeAdmits(s: ScopeConstraint, type: string, schema: SchemaModel): boolean {
  // An entity of `type` can only be `in` entities of itself or of its allowed
  // ancestor types: entities are checked against the schema's memberOf.
  const canBeIn = (target: EUid) => target.type === type || (schema.entityTypes.get(type)?.allowedParents.has(target.type) ?? true);
  switch (s.op) {
    case 'All':
      return true;
    case '==':
      return s.entity.type === type;
    case 'in':
      return canBeIn(s.entity);
    case 'is':
      return s.type === type && (!s.in || canBeIn(s.in));
  }
}

/** Duplicate entity entries are accepted only when identical (as Cedar does). */
function sameEntity(a: { attrs: Record<string, Value>; parents: EUid[] }, b: { attrs: Record<string, Value>; parents: EUid[] }): boolean {
  if (!eq(a.attrs, b.attrs) || a.parents.length !== b.parents.length) return false;
  for (let i = 0; i < a.parents.length; i++) if (!b.parents.some((p) => eqUid(p, a.parents[i]))) return false;
  return true;
}

function actionAdmits(p: CompiledPolicy, a: ActionInfo): boolean {
  if (p.actions === null) return true;
  for (const target of p.actions) {
    if (eqUid(target, a.uid)) return true;
    if (p.actionIn && a.ancestors.some((x) => eqUid(x, target))) return true;
  }
  return false;
}

export class FastAuthorizer implements Authorizer {
  readonly engine = 'fast' as const;
  readonly policies: CompiledPolicy[];
  private readonly schema: SchemaModel;
  /** Action type → id → entry. */
  private readonly actions = new Map<string, Map<string, ActionEntry>>();
  /** Enumerated entity types and their ids; null when the schema has none. */
  private readonly enums: Map<string, Set<string>> | null = null;
  private readonly store: Store;
  /** Static entities that fail the schema make every request fail, as in cedar-wasm. */
  private readonly staticError: string | null = null;
  /** Uids static entities name as ancestors without defining them. */
  private readonly dangling = new Map<string, Set<string>>();
  private readonly attrChecks = new Map<string, { info: EntityTypeInfo; check: ShapeCheck }>();

  /** Throws Unsupported when the policy set or schema uses something this engine does not compile. */
  constructor(bundle: PolicyBundle) {
    this.schema = buildSchema(bundle.schema, bundle.prepared?.schemaJson);
    this.policies = (bundle.prepared?.policies ?? splitPolicies(bundle.policies)).map((p) =>
      compilePolicy(p, (actions, actionIn) => this.requiredContext(actions, actionIn)),
    );
    const statics = new Map<string, Map<string, EntData>>();
    const put = (e: EntData) => {
      let m = statics.get(e.uid.type);
      if (!m) statics.set(e.uid.type, (m = new Map()));
      m.set(e.uid.id, e);
    };
    for (const a of allActions(this.schema)) put(new EntData(a.uid, {}, a.parents, null));
    try {
      for (const raw of bundle.entities) {
        const e = parseEntity(this.schema, raw);
        if (!e) continue;
        const existing = statics.get(e.uid.type)?.get(e.uid.id);
        if (existing && !sameEntity(existing, e))
          throw new RequestError(`duplicate entity entry ${e.uid.type}::${JSON.stringify(e.uid.id)}`);
        put(new EntData(e.uid, e.attrs, e.parents, null, e.tags));
      }
    } catch (err) {
      if (!(err instanceof RequestError)) throw err;
      this.staticError = err.message;
    }
    // Transitive ancestors of every static entity (dangling parents included: Cedar's `in` holds for them too).
    for (const byId of statics.values()) {
      for (const e of byId.values()) {
        const anc = new Map<string, Set<string>>();
        const stack = [...e.parents];
        while (stack.length) {
          const p = stack.pop()!;
          let ids = anc.get(p.type);
          if (!ids) anc.set(p.type, (ids = new Set()));
          if (ids.has(p.id)) continue;
          ids.add(p.id);
          const pe = statics.get(p.type)?.get(p.id);
          if (pe) stack.push(...pe.parents);
          else if (!isActionType(p.type)) {
            let d = this.dangling.get(p.type);
            if (!d) this.dangling.set(p.type, (d = new Set()));
            d.add(p.id);
          }
        }
        e.anc = anc;
        // Cedar requires the hierarchy to be acyclic.
        if (this.staticError === null && anc.get(e.uid.type)?.has(e.uid.id))
          this.staticError = `hierarchy cycle containing ${e.uid.type}::${JSON.stringify(e.uid.id)}`;
      }
    }
    this.store = new Store(statics);
    for (const [name, info] of this.schema.entityTypes) {
      this.attrChecks.set(name, { info, check: shapeCheck(info.shape) });
      if (info.enumIds !== null) (this.enums ??= new Map()).set(name, info.enumIds);
    }
    for (const info of allActions(this.schema)) {
      const applicable = this.policies.filter((p) => actionAdmits(p, info));
      const byType = new Map<string, Map<string, Bucket>>();
      for (const pt of info.principalTypes) {
        const byR = new Map<string, Bucket>();
        for (const rtype of info.resourceTypes) {
          byR.set(
            rtype,
            makeBucket(applicable.filter((p) => scopeAdmits(p.principal, pt, this.schema) && scopeAdmits(p.resource, rtype, this.schema))),
          );
        }
        byType.set(pt, byR);
      }
      let byId = this.actions.get(info.uid.type);
      if (!byId) this.actions.set(info.uid.type, (byId = new Map()));
      byId.set(info.uid.id, { info, ctxCheck: shapeCheck(info.context), byType });
    }
  }

  private requiredContext(actions: EUid[] | null, actionIn: boolean): Set<string> {
    let common: Set<string> | null = null;
    const probe = { actions, actionIn } as CompiledPolicy;
    for (const a of allActions(this.schema)) {
      if (!actionAdmits(probe, a) || a.principalTypes.size === 0 || a.resourceTypes.size === 0) continue;
      const req = new Set(a.context.names.filter((_n, i) => a.context.required[i]));
      if (common === null) common = req;
      else for (const n of Array.from(common)) if (!req.has(n)) common.delete(n);
    }
    return common ?? new Set();
  }

  /** How many compiled policies a request for this action/principal type/resource type evaluates. */
  applicableCount(action: string, principalType: string, resourceType: string, actionType = 'Action'): number {
    return this.actions.get(actionType)?.get(action)?.byType.get(principalType)?.get(resourceType)?.policies.length ?? 0;
  }

  // The decision in flight (decisions are synchronous, so one set of slots suffices).
  private P: EUid = new EUid('', '');
  private R: EUid = new EUid('', '');
  private A: EUid = new EUid('', '');
  private C: Record<string, Value> = {};
  private bucket: Bucket = makeBucket([]);
  private failure = '';

  isAuthorized(req: AuthzRequest): Decision {
    const S = this.store;
    const problem = this.prepare(req);
    if (problem !== null) {
      S.n = 0;
      return { decision: 'deny', reasons: [], errors: [`request: ${problem}`] };
    }
    let permits: string[] | null = null;
    let forbids: string[] | null = null;
    let errors: string[] | null = null;
    const b = this.bucket;
    const pinned = b.byResource.size === 0 ? NONE : (b.byResource.get(this.R.id) ?? NONE);
    for (let pass = 0; pass < 2; pass++) {
      const list = pass === 0 ? b.any : pinned;
      for (let i = 0; i < list.length; i++) {
        const p = list[i];
        const r = this.evaluate(p);
        if (r === 1) {
          if (p.forbid) (forbids ??= []).push(p.id);
          else (permits ??= []).push(p.id);
        } else if (r === 2) (errors ??= []).push(`${p.id}: ${this.failure}`);
      }
    }
    S.n = 0;
    if (forbids !== null) return { decision: 'deny', reasons: forbids, errors: errors ?? EMPTY };
    if (permits !== null) return { decision: 'allow', reasons: permits, errors: errors ?? EMPTY };
    return { decision: 'deny', reasons: EMPTY, errors: errors ?? EMPTY };
  }

  // Principal and resource of the decision in flight: filled in place (no allocation);
  // nothing keeps them past the decision.
  private readonly scratchP = new EUid('', '');
  private readonly scratchR = new EUid('', '');

  private uidSlot(v: unknown, slot: EUid, what: string): EUid {
    const u = v as { type?: unknown; id?: unknown; __entity?: unknown } | null;
    if (u !== null && typeof u === 'object' && typeof u.type === 'string' && typeof u.id === 'string' && u.__entity === undefined) {
      const m = slot as { type: string; id: string };
      m.type = u.type;
      m.id = u.id;
      return slot;
    }
    return parseUid(v, what);
  }

  /** 1 satisfied, 0 not, 2 error (message in `failure`). Kept apart so the hot loop has no try/catch. */
  private evaluate(p: CompiledPolicy): number {
    try {
      return p.fn(this.P, this.A, this.R, this.C, this.store) ? 1 : 0;
    } catch (err) {
      this.failure = err instanceof EvalError ? err.message : `internal error: ${String(err)}`;
      return 2;
    }
  }

  /** Validates the request against the schema and loads its entities; returns the problem, or null. */
  private prepare(req: AuthzRequest): string | null {
    const S = this.store;
    S.n = 0;
    S.override = false;
    try {
      const ra = req.action as { type?: unknown; id?: unknown } | undefined;
      let entry =
        ra !== undefined && ra !== null && typeof ra.type === 'string' && typeof ra.id === 'string'
          ? this.actions.get(ra.type)?.get(ra.id)
          : undefined;
      if (entry === undefined) {
        const action = parseUid(req.action, 'action');
        entry = this.actions.get(action.type)?.get(action.id);
        if (entry === undefined) return `action ${action.type}::${JSON.stringify(action.id)} does not exist in the supplied schema`;
      }
      const A = entry.info.uid;
      const P = this.uidSlot(req.principal, this.scratchP, 'principal');
      const R = this.uidSlot(req.resource, this.scratchR, 'resource');
      const byR = entry.byType.get(P.type);
      // Messages follow cedar-wasm's wording (the dataplane matches "does not exist" / "not declared").
      if (byR === undefined)
        return `principal type \`${P.type}\` ${this.schema.entityTypes.has(P.type) ? `is not valid for \`${A.type}::${JSON.stringify(A.id)}\`` : 'is not declared in the schema'}`;
      const b = byR.get(R.type);
      if (b === undefined)
        return `resource type \`${R.type}\` ${this.schema.entityTypes.has(R.type) ? `is not valid for \`${A.type}::${JSON.stringify(A.id)}\`` : 'is not declared in the schema'}`;
      if (this.enums !== null) {
        // Principal and resource of an enumerated type must be one of its ids.
        const pe = this.enums.get(P.type);
        if (pe !== undefined && !pe.has(P.id)) return `entity \`${P.type}::${JSON.stringify(P.id)}\` is not one of the enumerated ids`;
        const re = this.enums.get(R.type);
        if (re !== undefined && !re.has(R.id)) return `entity \`${R.type}::${JSON.stringify(R.id)}\` is not one of the enumerated ids`;
      }
      this.C = entry.ctxCheck(req.context)
        ? (req.context as Record<string, Value>)
        : (conform(entry.info.context, req.context, 'context') as Record<string, Value>);
      if (req.entities?.length) this.loadRequestEntities(req.entities);
      if (this.staticError !== null) return this.staticError;
      this.A = A;
      this.P = P;
      this.R = R;
      this.bucket = b;
      return null;
    } catch (err) {
      // A malformed request is denied with the reason, never thrown at the dataplane.
      return err instanceof RequestError ? err.message : `malformed request: ${String(err)}`;
    }
  }

  /**
   * The common request entity (the agent with its groups): plain uids, attributes
   * already in runtime form, allowed parent types. Used as is, without copies;
   * anything else goes through parseEntity. (Parents stay plain {type, id}
   * objects: the store only reads their fields.)
   */
  private fastEntity(raw: unknown): EntData | undefined {
    const r = raw as {
      uid?: { type?: unknown; id?: unknown; __entity?: unknown };
      attrs?: unknown;
      parents?: unknown;
      tags?: unknown;
    } | null;
    if (r === null || typeof r !== 'object' || r.tags !== undefined) return undefined;
    const u = r.uid;
    if (u === undefined || u === null || typeof u.type !== 'string' || typeof u.id !== 'string' || u.__entity !== undefined)
      return undefined;
    const t = this.attrChecks.get(u.type);
    if (t === undefined || !t.check(r.attrs)) return undefined;
    if (t.info.enumIds !== null && !t.info.enumIds.has(u.id)) return undefined;
    const parents = r.parents;
    if (!Array.isArray(parents)) return undefined;
    for (let i = 0; i < parents.length; i++) {
      const p = parents[i] as { type?: unknown; id?: unknown; __entity?: unknown } | null;
      if (p === null || typeof p !== 'object' || typeof p.type !== 'string' || typeof p.id !== 'string' || p.__entity !== undefined)
        return undefined;
      if (!t.info.allowedParents.has(p.type) || !this.schema.entityTypes.has(p.type)) return undefined;
    }
    // The store only reads uid fields, so the request's own objects serve as is.
    return new EntData(u as EUid, r.attrs as Record<string, Value>, parents as EUid[], null);
  }

  private loadRequestEntities(list: readonly unknown[]): void {
    const S = this.store;
    for (const raw of list) {
      // Like WasmAuthorizer: request entities that name a static entity are dropped unchecked.
      const uidRaw = (raw as { uid?: unknown } | null)?.uid;
      if (uidRaw && typeof uidRaw === 'object') {
        const u = uidRaw as { type?: unknown; id?: unknown };
        if (typeof u.type === 'string' && typeof u.id === 'string' && !isActionType(u.type) && this.store.statics.get(u.type)?.has(u.id))
          continue;
      }
      const e = this.fastEntity(raw) ?? parseEntity(this.schema, raw);
      if (!e) continue;
      let dup = false;
      for (let i = 0; i < S.n; i++) {
        const o = S.req[i];
        if (o.uid.id === e.uid.id && o.uid.type === e.uid.type) {
          if (!sameEntity(o, e)) throw new RequestError(`duplicate entity entry ${e.uid.type}::${JSON.stringify(e.uid.id)}`);
          dup = true;
        }
      }
      if (dup) continue;
      S.req[S.n++] = e instanceof EntData ? e : new EntData(e.uid, e.attrs, e.parents, null, e.tags);
      if (this.dangling.get(e.uid.type)?.has(e.uid.id)) S.override = true;
    }
    // A cycle through request entities needs a request entity whose parent is a
    // request entity, or one that completes a static entity's dangling ancestor.
    let linked = S.override;
    for (let i = 0; i < S.n && !linked; i++) {
      const parents = S.req[i].parents;
      for (let k = 0; k < parents.length; k++) {
        const p = parents[k];
        for (let j = 0; j < S.n; j++) if (S.req[j].uid.id === p.id && S.req[j].uid.type === p.type) linked = true;
      }
    }
    if (linked) {
      for (let i = 0; i < S.n; i++) {
        const u = S.req[i].uid;
        if (S.reaches(S.req[i], u)) throw new RequestError(`hierarchy cycle containing ${u.type}::${JSON.stringify(u.id)}`);
      }
    }
  }

  dispose(): void {}
}
