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
}

export interface SchemaAction {
  /** Declared action groups; `type` as cedar-wasm reports it (normally "Action"). */
  memberOf: { id: string; type?: string }[];
  /** Ids of every action group above this action (transitive, not reflexive, parents first). */
  ancestors: string[];
  appliesTo?: { principalTypes: string[]; resourceTypes: string[]; context?: SchemaType };
}

export interface CedarSchema {
  /** Non-empty namespaces the schema declares; only the empty namespace is read. */
  namespaces: string[];
  entityTypes: Map<string, SchemaEntityType>;
  actions: Map<string, SchemaAction>;
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
  entityTypes?: Record<string, { memberOfTypes?: string[]; shape?: JsonType; tags?: unknown; enum?: unknown }>;
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
export function readSchema(text: string, resolvedJson?: unknown): CedarSchema {
  const answer = (resolvedJson ?? cedar.schemaToJsonWithResolvedTypes(text)) as {
    type: string;
    json?: unknown;
    errors?: { message: string }[];
  };
  if (answer.type !== 'success') throw new CedarSchemaError('invalid', `schema: ${(answer.errors ?? []).map((e) => e.message).join('; ')}`);
  const json = (answer.json ?? {}) as Record<string, JsonNamespace>;
  const ns = json[''] ?? {};
  const common = ns.commonTypes ?? {};
  const entityDecls = ns.entityTypes ?? {};
  const actionDecls = ns.actions ?? {};

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
        return { kind: 'Extension', name: t.name! };
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
    });
  }
  const actions = new Map<string, SchemaAction>();
  for (const [id, decl] of Object.entries(actionDecls)) {
    const memberOf = decl.memberOf ?? [];
    const at = decl.appliesTo;
    actions.set(id, {
      memberOf,
      ancestors: closure(
        memberOf.map((m) => m.id),
        (p) => (actionDecls[p]?.memberOf ?? []).map((m) => m.id),
      ),
      ...(at && {
        appliesTo: {
          principalTypes: at.principalTypes ?? [],
          resourceTypes: at.resourceTypes ?? [],
          ...(at.context && { context: toType(at.context) }),
        },
      }),
    });
  }
  return { namespaces: Object.keys(json).filter((n) => n !== ''), entityTypes, actions };
}
