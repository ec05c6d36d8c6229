// The one reader of Cedar schema text: cedar-wasm's JSON form of the schema with
// common types inlined and type names resolved. Each user (compiled engine,
// prover, dataplane tool shapes) maps this to its own types and decides itself
// what it supports; the reader only refuses what no user could read.
import * as cedar from './wasm-loader.js';

export type SchemaType =
  | { kind: 'String' }
  | { kind: 'Long' }
  | { kind: 'Bool' }
  | { kind: 'Set'; element: SchemaType }
  | { kind: 'Record'; attributes: Record<string, SchemaAttribute>; additionalAttributes: boolean }
  | { kind: 'Entity'; name: string }
  | { kind: 'Extension'; name: string };

export interface SchemaAttribute {
  type: SchemaType;
  required: boolean;
}

export interface SchemaEntityType {
  /** Declared parent types (memberOfTypes), as written. */
  memberOfTypes: string[];
  /** Every type an ancestor may have: the transitive closure of memberOfTypes. */
  ancestorTypes: string[];
  /** Undefined when the declaration has no shape. */
  shape?: SchemaType;
  tags: boolean;
  enum: boolean;
  /** The declared tag type, when the type has tags. */
  tagType?: SchemaType;
  /** The allowed ids of an enumerated entity type. */
  enumIds?: string[];
}

export interface SchemaAction {
  /** Declared action groups; `type` as cedar-wasm reports it (normally "Action"). */
  memberOf: { id: string; type?: string }[];
  /** Ids of every action group above this action (transitive, not reflexive, parents first). */
  ancestors: string[];
  /** Qualified action type (`Action`, `NS::Action`). */
  type: string;
  /** Every action group above this action with its type (transitive, not reflexive). */
  ancestorUids: { type: string; id: string }[];
  appliesTo?: { principalTypes: string[]; resourceTypes: string[]; context?: SchemaType };
}

export interface CedarSchema {
  /** Non-empty namespaces the schema declares; read only with `allNamespaces`. */
  namespaces: string[];
  /** By qualified name (`User`, `NS::User`). */
  entityTypes: Map<string, SchemaEntityType>;
  /** Actions of type `Action` (the empty namespace), by id. */
  actions: Map<string, SchemaAction>;
  /** Every action read, by action type then id. */
  actionsByType: Map<string, Map<string, SchemaAction>>;
}

export interface ReadOptions {
  /** Read every namespace (types qualified as `NS::T`), not only the empty one. */
  allNamespaces?: boolean;
}

export type SchemaErrorCode =
  /** cedar-wasm does not accept the schema text. */
  | 'invalid'
  /** A common type that refers to itself, directly or not. */
  | 'recursive_type'
  /** A type name that is neither primitive, common, entity nor extension. */
  | 'unknown_type';

export class CedarSchemaError extends Error {
  override readonly name = 'CedarSchemaError';
  constructor(
    readonly code: SchemaErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const EXTENSIONS = new Set(['ipaddr', 'decimal', 'datetime', 'duration']);

interface JsonType {
  type: string;
  name?: string;
  element?: JsonType;
  attributes?: Record<string, JsonType & { required?: boolean }>;
  additionalAttributes?: boolean;
}

interface JsonNamespace {
  commonTypes?: Record<string, JsonType>;
  entityTypes?: Record<string, { memberOfTypes?: string[]; shape?: JsonType; tags?: JsonType; enum?: string[] }>;
  actions?: Record<
    string,
    {
      memberOf?: { id: string; type?: string }[];
      appliesTo?: { principalTypes?: string[]; resourceTypes?: string[]; context?: JsonType };
    }
  >;
}

/** Names reachable from `start` through `next`, depth first (stack order), without repeats. */
export function closure(start: string[], next: (name: string) => string[]): string[] {
  const seen = new Set<string>();
  const stack = [...start];
  while (stack.length) {
    const n = stack.pop()!;
    if (seen.has(n)) continue;
    seen.add(n);
    stack.push(...next(n));
  }
  return [...seen];
}

/**
 * Reads Cedar schema text. `resolvedJson`: cedar-wasm's schemaToJsonWithResolvedTypes(text)
 * answer when already made (cedar/prepare.ts makes it on the verification worker).
 */
export function readSchema(text: string, resolvedJson?: unknown, options: ReadOptions = {}): CedarSchema {
  const answer = (resolvedJson ?? cedar.schemaToJsonWithResolvedTypes(text)) as {
    type: string;
    json?: unknown;
    errors?: { message: string }[];
  };
  if (answer.type !== 'success') throw new CedarSchemaError('invalid', `schema: ${(answer.errors ?? []).map((e) => e.message).join('; ')}`);
  const json = (answer.json ?? {}) as Record<string, JsonNamespace>;
  const read = options.allNamespaces ? Object.keys(json) : Object.hasOwn(json, '') ? [''] : [];
  const q = (ns: string, name: string) => (ns === '' ? name : `${ns}::${name}`);
  // Declarations of every namespace read, under qualified names (resolved JSON names types qualified).
  const common: Record<string, JsonType> = {};
  const entityDecls: Record<string, NonNullable<JsonNamespace['entityTypes']>[string]> = {};
  const actionDecls = new Map<string, Map<string, NonNullable<JsonNamespace['actions']>[string]>>();
  for (const ns of read) {
    const n = json[ns] ?? {};
    for (const [k, v] of Object.entries(n.commonTypes ?? {})) common[q(ns, k)] = v;
    for (const [k, v] of Object.entries(n.entityTypes ?? {})) entityDecls[q(ns, k)] = v;
    const acts = new Map(Object.entries(n.actions ?? {}));
    if (acts.size) actionDecls.set(q(ns, 'Action'), acts);
  }

  const resolving = new Set<string>();
  const named = (name: string): SchemaType => {
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
      if (resolving.has(name)) throw new CedarSchemaError('recursive_type', `schema: common type ${name} refers to itself`);
      resolving.add(name);
      const t = toType(common[name]);
      resolving.delete(name);
      return t;
    }
    if (Object.hasOwn(entityDecls, name)) return { kind: 'Entity', name };
    const bare = name.replace(/^__cedar::/, '');
    if (EXTENSIONS.has(bare)) return { kind: 'Extension', name: bare };
    throw new CedarSchemaError('unknown_type', `schema: unknown type ${name}`);
  };
  const toType = (t: JsonType): SchemaType => {
    switch (t.type) {
      case 'Set':
        if (!t.element) throw new CedarSchemaError('invalid', 'schema: Set without element type');
        return { kind: 'Set', element: toType(t.element) };
      case 'Record': {
        const attributes: Record<string, SchemaAttribute> = {};
        for (const [k, v] of Object.entries(t.attributes ?? {})) attributes[k] = { type: toType(v), required: v.required !== false };
        return { kind: 'Record', attributes, additionalAttributes: t.additionalAttributes === true };
      }
      case 'Entity':
        return { kind: 'Entity', name: t.name! };
      case 'Extension':
        return { kind: 'Extension', name: t.name!.replace(/^__cedar::/, '') };
      case 'EntityOrCommon':
        return named(t.name!);
      default:
        return named(t.type);
    }
  };

  const entityTypes = new Map<string, SchemaEntityType>();
  for (const [name, decl] of Object.entries(entityDecls)) {
    entityTypes.set(name, {
      memberOfTypes: decl.memberOfTypes ?? [],
      ancestorTypes: closure(decl.memberOfTypes ?? [], (p) => entityDecls[p]?.memberOfTypes ?? []),
      ...(decl.shape ? { shape: toType(decl.shape) } : {}),
      tags: Boolean(decl.tags),
      enum: Boolean(decl.enum),
      ...(decl.tags ? { tagType: toType(decl.tags) } : {}),
      ...(decl.enum ? { enumIds: [...decl.enum] } : {}),
    });
  }
  const uidKey = (type: string, id: string) => `${type}\0${id}`;
  const groupsOf = (type: string, id: string) => (actionDecls.get(type)?.get(id)?.memberOf ?? []).map((m) => uidKey(m.type ?? type, m.id));
  const actionsByType = new Map<string, Map<string, SchemaAction>>();
  for (const [type, decls] of actionDecls) {
    const byId = new Map<string, SchemaAction>();
    actionsByType.set(type, byId);
    for (const [id, decl] of decls) {
      const memberOf = decl.memberOf ?? [];
      const at = decl.appliesTo;
      const ancestorUids = closure(groupsOf(type, id), (k) => {
        const cut = k.indexOf('\0');
        return groupsOf(k.slice(0, cut), k.slice(cut + 1));
      }).map((k) => {
        const cut = k.indexOf('\0');
        return { type: k.slice(0, cut), id: k.slice(cut + 1) };
      });
      byId.set(id, {
        memberOf,
        type,
        ancestors: ancestorUids.filter((u) => u.type === 'Action').map((u) => u.id),
        ancestorUids,
        ...(at && {
          appliesTo: {
            principalTypes: at.principalTypes ?? [],
            resourceTypes: at.resourceTypes ?? [],
            ...(at.context && { context: toType(at.context) }),
          },
        }),
      });
    }
  }
  return {
    namespaces: Object.keys(json).filter((n) => n !== ''),
    entityTypes,
    actions: actionsByType.get('Action') ?? new Map(),
    actionsByType,
  };
}
