// Stage 1 (env): the schema as the prover sees it — Cedar types, the entity
// ancestor-type relation, the concrete action hierarchy and the request
// environments (principal type, action, resource type, context type).
import { CedarSchemaError, readSchema, type CedarSchema, type SchemaErrorCode, type SchemaType } from '../../cedar/schema.js';

export type Ty =
  | { k: 'bool' }
  | { k: 'long' }
  | { k: 'string' }
  | { k: 'entity'; name: string }
  | { k: 'set'; elem: Ty }
  | { k: 'record'; fields: Record<string, { ty: Ty; required: boolean }> }
  | { k: 'ext'; name: string };

export type ProverSchemaErrorCode =
  | SchemaErrorCode
  /** Something in the schema the prover does not encode. */
  | 'unsupported'
  /** An action's context is not a record. */
  | 'bad_context';

export class SchemaError extends Error {
  constructor(
    readonly code: ProverSchemaErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface RequestEnv {
  principalType: string;
  /** The action's id; its type is actionType (`Action`, or `NS::Action` in a namespace). */
  action: string;
  actionType: string;
  resourceType: string;
  context: Ty & { k: 'record' };
}

export interface EntityTypeInfo {
  memberOf: string[];
  /** Declared attribute shape (undefined: no attributes). */
  shape?: Ty & { k: 'record' };
  /** The type of its tag values, when the type declares tags. */
  tags?: Ty;
  /** The declared ids of an enumerated entity type (every entity of the type has one of them). */
  enumIds?: string[];
}

export interface ProverSchema {
  /** Entity type (qualified: `NS::T`) → its declaration. */
  entityTypes: Map<string, EntityTypeInfo>;
  /** Entity type → every type its ancestors may have (transitive closure of memberOf). */
  ancestorTypes: Map<string, Set<string>>;
  /** Action key (actionKey) → keys of all its ancestor action groups (transitive, not reflexive). */
  actionAncestors: Map<string, Set<string>>;
  envs: RequestEnv[];
}

export function tyEq(a: Ty, b: Ty): boolean {
  if (a.k !== b.k) return false;
  switch (a.k) {
    case 'entity':
      return a.name === (b as typeof a).name;
    case 'ext':
      return a.name === (b as typeof a).name;
    case 'set':
      return tyEq(a.elem, (b as typeof a).elem);
    case 'record': {
      const bf = (b as typeof a).fields;
      const ak = Object.keys(a.fields).sort();
      const bk = Object.keys(bf).sort();
      return (
        ak.length === bk.length &&
        ak.every((k, i) => k === bk[i] && a.fields[k].required === bf[k].required && tyEq(a.fields[k].ty, bf[k].ty))
      );
    }
    default:
      return true;
  }
}

export function tyName(t: Ty): string {
  switch (t.k) {
    case 'entity':
      return t.name;
    case 'ext':
      return t.name;
    case 'set':
      return `Set<${tyName(t.elem)}>`;
    case 'record':
      return `{${Object.entries(t.fields)
        .map(([k, f]) => `${k}${f.required ? '' : '?'}: ${tyName(f.ty)}`)
        .join(', ')}}`;
    default:
      return t.k;
  }
}

/** Maps the schema reader's type to the prover's. */
function toTy(t: SchemaType): Ty {
  switch (t.kind) {
    case 'Bool':
      return { k: 'bool' };
    case 'Long':
      return { k: 'long' };
    case 'String':
      return { k: 'string' };
    case 'Set':
      return { k: 'set', elem: toTy(t.element) };
    case 'Record': {
      const fields: Record<string, { ty: Ty; required: boolean }> = {};
      for (const [k, a] of Object.entries(t.attributes)) fields[k] = { ty: toTy(a.type), required: a.required };
      return { k: 'record', fields };
    }
    case 'Entity':
      return { k: 'entity', name: t.name };
    case 'Extension':
      return { k: 'ext', name: t.name };
  }
}

/** The action entity type: `Action`, or `NS::Action` in a namespace (qualified names are just names). */
export function isActionType(type: string): boolean {
  return type === 'Action' || type.endsWith('::Action');
}

/** An action's key in actionAncestors: its uid as Cedar writes it. */
export function actionKey(type: string, id: string): string {
  return `${type}::${JSON.stringify(id)}`;
}

/**
 * Parses Cedar schema text (human form) into the prover's view: every namespace,
 * types and actions under their qualified names; entity tags with their value
 * type and enumerated entity types with their ids are kept for the encoding.
 */
export function loadSchema(text: string): ProverSchema {
  let schema: CedarSchema;
  try {
    schema = readSchema(text, undefined, { allNamespaces: true });
  } catch (err) {
    if (err instanceof CedarSchemaError) throw new SchemaError(err.code, err.message);
    throw err;
  }

  const entityTypes = new Map<string, EntityTypeInfo>();
  const ancestorTypes = new Map<string, Set<string>>();
  for (const [name, et] of schema.entityTypes) {
    const shape = et.shape ? (toTy(et.shape) as Ty & { k: 'record' }) : undefined;
    entityTypes.set(name, {
      memberOf: et.memberOfTypes,
      shape: shape && Object.keys(shape.fields).length ? shape : undefined,
      ...(et.tagType ? { tags: toTy(et.tagType) } : {}),
      ...(et.enumIds ? { enumIds: [...et.enumIds].sort() } : {}),
    });
    ancestorTypes.set(name, new Set(et.ancestorTypes));
  }

  const actionAncestors = new Map<string, Set<string>>();
  const envs: RequestEnv[] = [];
  for (const [actionType, actions] of [...schema.actionsByType].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    for (const [id, a] of actions) {
      actionAncestors.set(actionKey(actionType, id), new Set(a.ancestorUids.map((u) => actionKey(u.type, u.id))));
      const at = a.appliesTo;
      if (!at) continue;
      const ctx = at.context ? toTy(at.context) : ({ k: 'record', fields: {} } as Ty);
      if (ctx.k !== 'record')
        throw new SchemaError('bad_context', `schema: context of action ${actionKey(actionType, id)} is not a record`);
      for (const p of at.principalTypes)
        for (const r of at.resourceTypes) envs.push({ principalType: p, action: id, actionType, resourceType: r, context: ctx });
    }
  }
  return { entityTypes, ancestorTypes, actionAncestors, envs };
}

export function envKey(e: { principalType: string; action: string; actionType: string; resourceType: string }): string {
  return `${e.principalType}, ${actionKey(e.actionType, e.action)}, ${e.resourceType}`;
}
