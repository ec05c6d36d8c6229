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
  | { kind: 'Entity'; name: string; enumIds: Set<string> | null }
  | { kind: 'Ext'; name: 'ipaddr' | 'decimal' | 'datetime' | 'duration' };

export interface EntityTypeInfo {
  name: string;
  shape: SType & { kind: 'Record' };
  /** Types an entity of this type may be a direct member of (transitively closed, as Cedar checks). */
  allowedParents: Set<string>;
  /** The ids an enumerated entity type allows; null for ordinary types. */
  enumIds: Set<string> | null;
  /** The tag type; null when the type has no tags. */
  tags: SType | null;
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
  /** Every action, by action type (`Action`, `NS::Action`) then id. */
  actions: Map<string, Map<string, ActionInfo>>;
}

/** Every action of the schema. */
export function allActions(schema: SchemaModel): ActionInfo[] {
  const out: ActionInfo[] = [];
  for (const byId of schema.actions.values()) for (const a of byId.values()) out.push(a);
  return out;
}

/** Whether `type` names action entities (`Action` in any namespace). */
export function isActionType(type: string): boolean {
  return type === 'Action' || type.endsWith('::Action');
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
    schema = readSchema(text, resolvedJson, { allNamespaces: true });
  } catch (err) {
    if (err instanceof CedarSchemaError && err.code === 'unknown_type') throw new Unsupported(err.message);
    throw err;
  }
  const enumOf = (name: string) => {
    const ids = schema.entityTypes.get(name)?.enumIds;
    return ids ? new Set(ids) : null;
  };
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
        return { kind: 'Entity', name: t.name, enumIds: enumOf(t.name) };
      case 'Extension':
        switch (t.name) {
          case 'ipaddr':
          case 'decimal':
          case 'datetime':
          case 'duration':
            return { kind: 'Ext', name: t.name };
        }
        throw new Unsupported(`extension type ${t.name} in schema`);
    }
  };

  const entityTypes = new Map<string, EntityTypeInfo>();
  for (const [name, decl] of schema.entityTypes) {
    const shape = decl.shape ? toType(decl.shape) : EMPTY_RECORD();
    if (shape.kind !== 'Record') throw new Unsupported(`entity ${name} shape is not a record`);
    entityTypes.set(name, {
      name,
      shape,
      allowedParents: new Set(decl.ancestorTypes),
      enumIds: enumOf(name),
      tags: decl.tagType ? toType(decl.tagType) : null,
    });
  }

  const actions = new Map<string, Map<string, ActionInfo>>();
  for (const [type, decls] of schema.actionsByType) {
    const byId = new Map<string, ActionInfo>();
    actions.set(type, byId);
    for (const [id, decl] of decls) {
      const applies = decl.appliesTo;
      let context = EMPTY_RECORD();
      if (applies?.context) {
        const t = toType(applies.context);
        if (t.kind !== 'Record') throw new Error(`schema: context of action ${type}::${JSON.stringify(id)} is not a record`);
        context = t;
      }
      byId.set(id, {
        uid: new EUid(type, id),
        ancestors: [],
        parents: decl.memberOf.map((m) => new EUid(m.type ?? type, m.id)),
        principalTypes: new Set(applies?.principalTypes ?? []),
        resourceTypes: new Set(applies?.resourceTypes ?? []),
        context,
      });
    }
  }
  for (const [type, byId] of actions)
    for (const [id, info] of byId)
      info.ancestors = schema.actionsByType
        .get(type)!
        .get(id)!
        .ancestorUids.map((a) => actions.get(a.type)?.get(a.id)?.uid ?? new EUid(a.type, a.id));
  return { entityTypes, actions };
}
