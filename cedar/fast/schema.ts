// The schema as the compiled engine needs it: entity types with their attribute
// shapes and allowed parent types, and actions with their hierarchy, appliesTo
// and context shape. Built from cedar/schema.ts's reading of the schema.
import { CedarSchemaError, readSchema, type CedarSchema, type SchemaType } from '../schema.js';
import { EUid } from './values.js';

/** A construct the compiled engine does not implement; the caller falls back to cedar-wasm. */
export class Unsupported extends Error {
  readonly code = 'unsupported';
}

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

// Schema conversion through cedar-wasm is slow (~100 ms); activations of the same
// schema share the (immutable) model.
const cache = new Map<string, SchemaModel>();

/** `resolvedJson`: cedar-wasm's schemaToJsonWithResolvedTypes(text) answer, when already made (engine/prepare.ts). */
export function buildSchema(text: string, resolvedJson?: unknown): SchemaModel {
  const hit = cache.get(text);
  if (hit) return hit;
  const model = buildSchemaUncached(text, resolvedJson);
  if (cache.size >= 16) cache.delete(cache.keys().next().value as string);
  cache.set(text, model);
  return model;
}

function buildSchemaUncached(text: string, resolvedJson: unknown): SchemaModel {
  let schema: CedarSchema;
  try {
    schema = readSchema(text, resolvedJson);
  } catch (err) {
    if (err instanceof CedarSchemaError && err.code === 'unknown_type') throw new Unsupported(err.message);
    throw err;
  }
  for (const ns of schema.namespaces) throw new Unsupported(`schema namespace "${ns}"`);
  const toType = (t: SchemaType): SType => {
    switch (t.kind) {
      case 'String':
      case 'Long':
      case 'Bool':
        return { kind: t.kind };
      case 'Set':
        return { kind: 'Set', element: toType(t.element) };
      case 'Record': {
        if (t.additionalAttributes) throw new Unsupported('records with additionalAttributes');
        const attrs = new Map<string, { type: SType; required: boolean }>();
        for (const [k, a] of Object.entries(t.attributes)) attrs.set(k, { type: toType(a.type), required: a.required });
        // Parallel arrays: the request validator walks them with indexed loops.
        return {
          kind: 'Record',
          attrs,
          names: [...attrs.keys()],
          types: [...attrs.values()].map((a) => a.type),
          required: [...attrs.values()].map((a) => a.required),
        };
      }
      case 'Entity':
        if (!schema.entityTypes.has(t.name)) throw new Unsupported(`schema entity type "${t.name}"`);
        return { kind: 'Entity', name: t.name };
      case 'Extension':
        throw new Unsupported(`extension type ${t.name} in schema`);
    }
  };

  const entityTypes = new Map<string, EntityTypeInfo>();
  for (const [name, decl] of schema.entityTypes) {
    if (decl.tags) throw new Unsupported(`entity tags (${name})`);
    if (decl.enum) throw new Unsupported(`enumerated entity type ${name}`);
    const shape = decl.shape ? toType(decl.shape) : EMPTY_RECORD();
    if (shape.kind !== 'Record') throw new Unsupported(`entity ${name} shape is not a record`);
    entityTypes.set(name, { name, shape, allowedParents: new Set(decl.ancestorTypes) });
  }

  const actions = new Map<string, ActionInfo>();
  for (const [id, decl] of schema.actions) {
    const applies = decl.appliesTo;
    let context = EMPTY_RECORD();
    if (applies?.context) {
      const t = toType(applies.context);
      if (t.kind !== 'Record') throw new Error(`schema: context of action ${id} is not a record`);
      context = t;
    }
    for (const m of decl.memberOf) if (m.type && m.type !== 'Action') throw new Unsupported(`action group of type ${m.type}`);
    actions.set(id, {
      uid: new EUid('Action', id),
      ancestors: [],
      parents: decl.memberOf.map((m) => new EUid('Action', m.id)),
      principalTypes: new Set(applies?.principalTypes ?? []),
      resourceTypes: new Set(applies?.resourceTypes ?? []),
      context,
    });
  }
  for (const [id, info] of actions)
    info.ancestors = schema.actions.get(id)!.ancestors.map((a) => actions.get(a)?.uid ?? new EUid('Action', a));
  return { entityTypes, actions };
}
