// The schema as the compiled engine needs it: entity types with their attribute
// shapes and allowed parent types, and actions with their hierarchy, appliesTo
// and context shape. Built from cedar-wasm's JSON form of the schema.
import * as cedar from '../wasm-loader.js';
import { EUid } from './values.js';

/** A construct the compiled engine does not implement; the caller falls back to cedar-wasm. */
export class Unsupported extends Error {}

export type SType =
  | { kind: 'String' }
  | { kind: 'Long' }
  | { kind: 'Bool' }
  | { kind: 'Set'; element: SType }
  | { kind: 'Record'; attrs: Map<string, { type: SType; required: boolean }>; names: string[]; types: SType[]; required: boolean[] }
  | { kind: 'Entity'; name: string };

export interface EntityTypeInfo {
  name: string;
  shape: SType & { kind: 'Record' };
  /** Types an entity of this type may be a direct member of (transitively closed, as Cedar checks). */
  allowedParents: Set<string>;
}

export interface ActionInfo {
  uid: EUid;
  /** Transitive action groups, excluding the action itself. */
  ancestors: EUid[];
  parents: EUid[];
  principalTypes: Set<string>;
  resourceTypes: Set<string>;
  context: SType & { kind: 'Record' };
}

export interface SchemaModel {
  entityTypes: Map<string, EntityTypeInfo>;
  actions: Map<string, ActionInfo>;
}

const EMPTY_RECORD = (): SType & { kind: 'Record' } => ({ kind: 'Record', attrs: new Map(), names: [], types: [], required: [] });

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

// Schema conversion through cedar-wasm is slow (~100 ms); activations of the same
// schema share the (immutable) model.
const cache = new Map<string, SchemaModel>();

/** `resolvedJson`: cedar-wasm's schemaToJsonWithResolvedTypes(text) answer, when already made (engine/prepare.ts). */
export function buildSchema(text: string, resolvedJson?: unknown): SchemaModel {
  const hit = cache.get(text);
  if (hit) return hit;
  const model = buildSchemaUncached(resolvedJson ?? cedar.schemaToJsonWithResolvedTypes(text));
  if (cache.size >= 16) cache.delete(cache.keys().next().value as string);
  cache.set(text, model);
  return model;
}

function buildSchemaUncached(resolved: unknown): SchemaModel {
  const answer = resolved as Json;
  if (answer.type !== 'success') throw new Error(`schema: ${(answer.errors ?? []).map((e: Json) => e.message).join('; ')}`);
  const namespaces = answer.json as Record<string, Json>;
  for (const ns of Object.keys(namespaces)) if (ns !== '') throw new Unsupported(`schema namespace "${ns}"`);
  const root = namespaces[''] ?? {};
  const common: Record<string, Json> = root.commonTypes ?? {};
  const entityDecls: Record<string, Json> = root.entityTypes ?? {};
  const actionDecls: Record<string, Json> = root.actions ?? {};

  const resolving = new Set<string>();
  const named = (name: string): SType => {
    switch (name) {
      case 'String':
      case '__cedar::String':
        return { kind: 'String' };
      case 'Long':
      case '__cedar::Long':
        return { kind: 'Long' };
      case 'Bool':
      case 'Boolean':
      case '__cedar::Bool':
        return { kind: 'Bool' };
    }
    if (Object.hasOwn(common, name)) {
      if (resolving.has(name)) throw new Error(`schema: common type ${name} refers to itself`);
      resolving.add(name);
      const t = toType(common[name]);
      resolving.delete(name);
      return t;
    }
    if (Object.hasOwn(entityDecls, name)) return { kind: 'Entity', name };
    throw new Unsupported(`schema type "${name}"`);
  };
  const toType = (t: Json): SType => {
    switch (t.type) {
      case 'String':
        return { kind: 'String' };
      case 'Long':
        return { kind: 'Long' };
      case 'Bool':
      case 'Boolean':
        return { kind: 'Bool' };
      case 'Set':
        return { kind: 'Set', element: toType(t.element) };
      case 'Record': {
        if (t.additionalAttributes) throw new Unsupported('records with additionalAttributes');
        const attrs = new Map<string, { type: SType; required: boolean }>();
        for (const [k, v] of Object.entries(t.attributes ?? {}) as [string, Json][]) attrs.set(k, { type: toType(v), required: v.required !== false });
        // Parallel arrays: the request validator walks them with indexed loops.
        return { kind: 'Record', attrs, names: [...attrs.keys()], types: [...attrs.values()].map((a) => a.type), required: [...attrs.values()].map((a) => a.required) };
      }
      case 'Entity':
        if (!Object.hasOwn(entityDecls, t.name)) throw new Unsupported(`schema entity type "${t.name}"`);
        return { kind: 'Entity', name: t.name };
      case 'Extension':
        throw new Unsupported(`extension type ${t.name} in schema`);
      case 'EntityOrCommon':
        return named(t.name);
      default:
        return named(t.type);
    }
  };

  const entityTypes = new Map<string, EntityTypeInfo>();
  const direct = new Map<string, string[]>();
  for (const [name, decl] of Object.entries(entityDecls) as [string, Json][]) {
    if (decl.tags) throw new Unsupported(`entity tags (${name})`);
    if (decl.enum) throw new Unsupported(`enumerated entity type ${name}`);
    const shape = decl.shape ? toType(decl.shape) : EMPTY_RECORD();
    if (shape.kind !== 'Record') throw new Unsupported(`entity ${name} shape is not a record`);
    direct.set(name, decl.memberOfTypes ?? []);
    entityTypes.set(name, { name, shape, allowedParents: new Set() });
  }
  for (const [name, info] of entityTypes) {
    const stack = [...(direct.get(name) ?? [])];
    while (stack.length) {
      const p = stack.pop()!;
      if (info.allowedParents.has(p)) continue;
      info.allowedParents.add(p);
      stack.push(...(direct.get(p) ?? []));
    }
  }

  const actions = new Map<string, ActionInfo>();
  for (const [id, decl] of Object.entries(actionDecls) as [string, Json][]) {
    const applies = decl.appliesTo;
    let context = EMPTY_RECORD();
    if (applies?.context) {
      const t = toType(applies.context);
      if (t.kind !== 'Record') throw new Error(`schema: context of action ${id} is not a record`);
      context = t;
    }
    const parents = (decl.memberOf ?? []).map((m: Json) => {
      if (m.type && m.type !== 'Action') throw new Unsupported(`action group of type ${m.type}`);
      return m.id as string;
    });
    actions.set(id, {
      uid: new EUid('Action', id),
      ancestors: [],
      parents: parents.map((p: string) => new EUid('Action', p)),
      principalTypes: new Set(applies?.principalTypes ?? []),
      resourceTypes: new Set(applies?.resourceTypes ?? []),
      context,
    });
  }
  for (const info of actions.values()) {
    const seen = new Set<string>();
    const stack = info.parents.map((p) => p.id);
    while (stack.length) {
      const p = stack.pop()!;
      if (seen.has(p)) continue;
      seen.add(p);
      const parent = actions.get(p);
      info.ancestors.push(parent ? parent.uid : new EUid('Action', p));
      if (parent) stack.push(...parent.parents.map((x) => x.id));
    }
  }
  return { entityTypes, actions };
}
