// What the active schema says about MCP tool requests: which actions are tools
// (their context has `tool` and `arguments`) and which argument attributes the
// ToolArguments record declares, with their types. Requests are built to
// exactly this shape because the engine validates them against the schema.
import { readSchema, type CedarSchema, type SchemaType } from '../../../cedar/schema.js';
import type { CedarValue } from '../../../cedar/types.js';

type AttrType = 'String' | 'Long' | 'Boolean' | 'SetString';

export interface ToolShapes {
  /** Action ids whose context is a tool context. */
  toolActions: Set<string>;
  /** Declared ToolArguments attributes and their types. */
  argumentTypes: Map<string, AttrType>;
}

/** The argument type projectArguments keeps, or undefined for any other type. */
function attrType(t: SchemaType): AttrType | undefined {
  if (t.kind === 'String' || t.kind === 'Long') return t.kind;
  if (t.kind === 'Bool') return 'Boolean';
  return t.kind === 'Set' && t.element.kind === 'String' ? 'SetString' : undefined;
}

export function toolShapesFromSchema(schemaText: string): ToolShapes {
  const shapes: ToolShapes = { toolActions: new Set(), argumentTypes: new Map() };
  let schema: CedarSchema;
  try {
    schema = readSchema(schemaText);
  } catch {
    return shapes;
  }
  // The dataplane's actions live in the empty namespace (Action::"read_file").
  for (const [action, def] of schema.actions) {
    const ctx = def.appliesTo?.context;
    const attrs = ctx?.kind === 'Record' ? ctx.attributes : undefined;
    if (!attrs?.tool || !attrs.arguments) continue;
    shapes.toolActions.add(action);
    const args = attrs.arguments.type;
    for (const [name, at] of Object.entries(args.kind === 'Record' ? args.attributes : {})) {
      const type = attrType(at.type);
      if (type) shapes.argumentTypes.set(name, type);
    }
  }
  return shapes;
}

/** Keeps the arguments the schema declares, with values of the declared type; drops the rest. */
export function projectArguments(args: Record<string, unknown>, types: Map<string, AttrType>): Record<string, CedarValue> {
  const out: Record<string, CedarValue> = {};
  for (const [name, type] of types) {
    if (!Object.hasOwn(args, name)) continue;
    const v = args[name];
    if (type === 'String' && typeof v === 'string') out[name] = v;
    else if (type === 'Long' && typeof v === 'number' && Number.isSafeInteger(v)) out[name] = v;
    else if (type === 'Long' && typeof v === 'bigint' && v >= LONG_MIN && v <= LONG_MAX) out[name] = v;
    // Dropped, the argument would read as absent to the policy: refused instead (the decision denies, naming it).
    else if (type === 'Long' && (typeof v === 'bigint' || (typeof v === 'number' && (v >= 2 ** 63 || v < -(2 ** 63)))))
      throw new Error(`tool argument \`${name}\` is an integer outside the 64-bit Long range`);
    else if (type === 'Boolean' && typeof v === 'boolean') out[name] = v;
    else if (type === 'SetString' && Array.isArray(v) && v.every((x) => typeof x === 'string')) out[name] = v as string[];
  }
  return out;
}

/** Cedar's Long range: integers read exactly (BigInt, beyond 2^53) inside it are passed exact. */
const LONG_MIN = -(2n ** 63n);
const LONG_MAX = 2n ** 63n - 1n;

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
