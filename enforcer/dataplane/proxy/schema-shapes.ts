// What the active schema says about MCP tool requests: which actions are tools
// (their context has `tool` and `arguments`) and which argument attributes the
// ToolArguments record declares, with their types. Requests are built to
// exactly this shape because the engine validates them against the schema.
import * as cedar from '../../../cedar/wasm-loader.js';
import type { CedarValue } from '../../../cedar/types.js';

type AttrType = 'String' | 'Long' | 'Boolean' | 'SetString';

export interface ToolShapes {
  /** Action ids whose context is a tool context. */
  toolActions: Set<string>;
  /** Declared ToolArguments attributes and their types. */
  argumentTypes: Map<string, AttrType>;
}

interface JsonType {
  type: string;
  name?: string;
  attributes?: Record<string, JsonType & { required?: boolean }>;
  element?: JsonType;
}

function resolve(t: JsonType | undefined, common: Record<string, JsonType>, depth = 0): JsonType | undefined {
  if (!t || depth > 8) return undefined;
  if (t.type === 'Record' || t.type === 'Set' || t.type === 'String' || t.type === 'Long' || t.type === 'Boolean') return t;
  const name = t.type === 'EntityOrCommon' ? t.name : t.type;
  return name && common[name] ? resolve(common[name], common, depth + 1) : undefined;
}

export function toolShapesFromSchema(schemaText: string): ToolShapes {
  const answer = cedar.schemaToJsonWithResolvedTypes(schemaText) as unknown as { type: string; json?: Record<string, { commonTypes?: Record<string, JsonType>; actions?: Record<string, { appliesTo?: { context?: JsonType } }> }> };
  const shapes: ToolShapes = { toolActions: new Set(), argumentTypes: new Map() };
  if (answer.type !== 'success' || !answer.json) return shapes;
  // The dataplane's actions live in the empty namespace (Action::"read_file").
  const ns = answer.json[''] ?? {};
  const common = ns.commonTypes ?? {};
  for (const [action, def] of Object.entries(ns.actions ?? {})) {
    const ctx = resolve(def.appliesTo?.context, common);
    const attrs = ctx?.attributes;
    if (!attrs || !attrs.tool || !attrs.arguments) continue;
    shapes.toolActions.add(action);
    const args = resolve(attrs.arguments, common);
    for (const [name, at] of Object.entries(args?.attributes ?? {})) {
      const r = resolve(at, common);
      if (!r) continue;
      if (r.type === 'String' || r.type === 'Long' || r.type === 'Boolean') shapes.argumentTypes.set(name, r.type);
      else if (r.type === 'Set' && resolve(r.element, common)?.type === 'String') shapes.argumentTypes.set(name, 'SetString');
    }
  }
  return shapes;
}

/** Keeps the arguments the schema declares, with values of the declared type; drops the rest. */
export function projectArguments(args: Record<string, unknown>, types: Map<string, AttrType>): Record<string, CedarValue> {
  const out: Record<string, CedarValue> = {};
  for (const [name, type] of types) {
    if (!Object.prototype.hasOwnProperty.call(args, name)) continue;
    const v = args[name];
    if (type === 'String' && typeof v === 'string') out[name] = v;
    else if (type === 'Long' && typeof v === 'number' && Number.isSafeInteger(v)) out[name] = v;
    else if (type === 'Boolean' && typeof v === 'boolean') out[name] = v;
    else if (type === 'SetString' && Array.isArray(v) && v.every((x) => typeof x === 'string')) out[name] = v as string[];
  }
  return out;
}

const cache = new WeakMap<object, ToolShapes>();

/**
 * Shapes for a snapshot. The schema text comes from `snapshot.schema`; a
 * snapshot without it gets no declared arguments and tool actions are found by
 * asking the engine (see toolActionFor in decide.ts).
 */
export function toolShapesFor(snapshot: { schema?: string }): ToolShapes | null {
  if (snapshot.schema === undefined) return null;
  let s = cache.get(snapshot);
  if (!s) {
    s = toolShapesFromSchema(snapshot.schema);
    cache.set(snapshot, s);
  }
  return s;
}
