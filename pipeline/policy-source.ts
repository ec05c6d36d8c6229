// A policy repository's content, read from a directory or from any file map
// (a git tree): schema, policies, invariants, static entities and lilith.json.
import { readFile, readdir, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { longOutOfRange, parseJsonLong } from '../cedar/json-long.js';
import type { Entity, PolicyBundle } from '../cedar/types.js';

export const SCHEMA_FILE = 'schema.cedarschema';
export const CONFIG_FILE = 'lilith.json';
export const ENTITIES_FILE = 'entities.json';
export const INVARIANTS_DIR = 'invariants';

export interface PolicySource {
  /** Relative path (e.g. "mcp.cedar") → text, top-level *.cedar only. */
  policies: Record<string, string>;
  /** Relative path (e.g. "invariants/no-pii-egress.cedar") → text. */
  invariants: Record<string, string>;
  schema: string;
  entitiesText: string;
  configText: string;
}

export type PolicySourceErrorCode =
  /** schema.cedarschema or lilith.json is missing. */
  | 'missing_file'
  /** No *.cedar policy file. */
  | 'no_policies'
  /** The directory cannot be read. */
  | 'unreadable'
  /** entities.json is not JSON or not an array. */
  | 'bad_entities';

export class PolicySourceError extends Error {
  constructor(
    readonly code: PolicySourceErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Builds a PolicySource from a flat map of relative paths to file text (directory or git tree). */
export function policySourceFromFiles(files: Map<string, string>): PolicySource {
  const schema = files.get(SCHEMA_FILE);
  if (schema === undefined) throw new PolicySourceError('missing_file', `missing ${SCHEMA_FILE}`);
  const configText = files.get(CONFIG_FILE);
  if (configText === undefined) throw new PolicySourceError('missing_file', `missing ${CONFIG_FILE}`);
  const policies: Record<string, string> = {};
  const invariants: Record<string, string> = {};
  for (const [path, text] of files) {
    if (!path.endsWith('.cedar')) continue;
    if (!path.includes('/')) policies[path] = text;
    else if (path.startsWith(`${INVARIANTS_DIR}/`) && path.split('/').length === 2) invariants[path] = text;
  }
  if (Object.keys(policies).length === 0) throw new PolicySourceError('no_policies', 'no policies (*.cedar) found');
  return { policies, invariants, schema, entitiesText: files.get(ENTITIES_FILE) ?? '[]', configText };
}

/** Reads the policy repository files under `dir` (top level and invariants/). */
export async function readPolicyDir(dir: string): Promise<PolicySource> {
  const files = new Map<string, string>();
  const wanted = async (path: string) => {
    const rel = relative(dir, path);
    files.set(rel, await readFile(path, 'utf8'));
  };
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (err) {
    throw new PolicySourceError('unreadable', `cannot read policy directory ${dir}: ${(err as Error).message}`);
  }
  for (const name of entries) {
    const path = join(dir, name);
    const st = await stat(path);
    if (st.isFile() && (name.endsWith('.cedar') || name === SCHEMA_FILE || name === CONFIG_FILE || name === ENTITIES_FILE))
      await wanted(path);
    if (st.isDirectory() && name === INVARIANTS_DIR) {
      for (const inv of await readdir(path)) if (inv.endsWith('.cedar')) await wanted(join(path, inv));
    }
  }
  return policySourceFromFiles(files);
}

/** Parses entities.json; throws PolicySourceError naming the problem. */
export function parseEntities(text: string): Entity[] {
  let value: unknown;
  try {
    // Longs exact: JSON.parse would read 9007199254740993 as 9007199254740992.
    value = parseJsonLong(text);
  } catch (err) {
    throw new PolicySourceError('bad_entities', `${ENTITIES_FILE}: ${(err as Error).message}`);
  }
  if (!Array.isArray(value)) throw new PolicySourceError('bad_entities', `${ENTITIES_FILE}: expected an array of entities`);
  const outside = longOutOfRange(value);
  if (outside !== null)
    throw new PolicySourceError('bad_entities', `${ENTITIES_FILE}: ${outside} is an integer outside the 64-bit Long range`);
  return value as Entity[];
}

/** The engine input for the policy set (invariants are not part of the enforced set). */
export function toBundle(src: PolicySource): PolicyBundle {
  return { policies: src.policies, schema: src.schema, entities: parseEntities(src.entitiesText) };
}
