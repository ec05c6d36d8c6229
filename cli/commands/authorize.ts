// `lilith authorize`: one Cedar decision from the command line, the debugging
// tool for policies (like `opa eval`). Prints {decision, reasons, errors}.
import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { parseCommandArgs, runCommand, UsageError } from '../args.js';
import { createAuthorizer, parseJsonLong, type AuthzRequest, type Entity, type PolicyBundle } from '../../cedar/index.js';
import { parseEntities, readPolicyDir } from '../../pipeline/policy-source.js';

export const summary = 'decide one request against policies, schema and entities (prints {decision, reasons, errors})';

export const usage = `usage: lilith authorize --request JSON|@FILE [--policies FILE|DIR] [--schema FILE]
                        [--entities FILE] [--engine fast|wasm]

  --policies FILE|DIR  a .cedar file, or a policy repository directory (default
                       ./policies): its top-level *.cedar files, and unless given
                       otherwise its schema.cedarschema and entities.json
  --schema FILE        Cedar schema (required with a policy file)
  --entities FILE      static entities, a JSON array (default: none, or the
                       directory's entities.json)
  --request JSON|@FILE {principal, action, resource, context, entities?}; uids as
                       {"type": "Agent", "id": "…"} or the text form Agent::"…"
  --engine fast|wasm   the compiled engine (default) or cedar-wasm

Prints one JSON line: {"decision": "allow"|"deny", "reasons": [...], "errors": [...]}.
Policies are named by their @id annotation. A malformed request is a deny whose
errors start with "request:".

Exit status: 0 allow, 1 deny, 2 usage or input error.
`;

async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${what} ${path}: ${(err as Error).message}`);
  }
}

/** Accepts {"type","id"} or the Cedar text form Type::"id". */
function uid(v: unknown, what: string): { type: string; id: string } {
  if (typeof v === 'string') {
    const m = /^(.+?)::("(?:[^"\\]|\\.)*")$/.exec(v.trim());
    if (m) return { type: m[1], id: JSON.parse(m[2]) as string };
    throw new UsageError(`request ${what}: expected Type::"id", got ${v}`);
  }
  if (v && typeof v === 'object' && typeof (v as { type?: unknown }).type === 'string' && typeof (v as { id?: unknown }).id === 'string')
    return v as { type: string; id: string };
  throw new UsageError(`request ${what}: expected {"type": …, "id": …} or Type::"id"`);
}

function parseRequest(text: string): AuthzRequest {
  let v: unknown;
  try {
    v = parseJsonLong(text); // Longs beyond 2^53 stay exact
  } catch (err) {
    throw new UsageError(`--request is not JSON: ${(err as Error).message}`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new UsageError('--request must be a JSON object');
  const r = v as Record<string, unknown>;
  const action = typeof r.action === 'string' && !r.action.includes('::') ? { type: 'Action', id: r.action } : uid(r.action, 'action');
  const context = r.context ?? {};
  if (!context || typeof context !== 'object' || Array.isArray(context)) throw new UsageError('request context must be a JSON object');
  if (r.entities !== undefined && !Array.isArray(r.entities)) throw new UsageError('request entities must be an array');
  return {
    principal: uid(r.principal, 'principal'),
    action,
    resource: uid(r.resource, 'resource'),
    context: context as AuthzRequest['context'],
    entities: r.entities as Entity[] | undefined,
  };
}

export async function loadBundle(policies: string, schemaFile?: string, entitiesFile?: string): Promise<PolicyBundle> {
  const st = await stat(policies).catch(() => null);
  if (!st) throw new UsageError(`--policies ${policies}: no such file or directory`);
  let bundle: PolicyBundle;
  if (st.isDirectory()) {
    const src = await readPolicyDir(policies).catch((err: Error) => {
      throw new UsageError(`--policies ${policies}: ${err.message}`);
    });
    bundle = { policies: src.policies, schema: src.schema, entities: parseEntities(src.entitiesText) };
  } else {
    if (!schemaFile) throw new UsageError(`--schema is required when --policies is a file\n\n${usage.trimEnd()}`);
    bundle = { policies: { [basename(policies)]: await readText(policies, 'policy file') }, schema: '', entities: [] };
  }
  if (schemaFile) bundle.schema = await readText(schemaFile, 'schema');
  if (entitiesFile) bundle.entities = parseEntities(await readText(entitiesFile, 'entities'));
  return bundle;
}

export async function run(argv: string[]): Promise<number> {
  return runCommand(async () => {
    const { values, positionals } = parseCommandArgs(
      argv,
      {
        policies: { type: 'string', default: 'policies' },
        schema: { type: 'string' },
        entities: { type: 'string' },
        request: { type: 'string' },
        engine: { type: 'string', default: 'fast' },
      },
      usage,
    );
    if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}\n\n${usage.trimEnd()}`);
    if (values.engine !== 'fast' && values.engine !== 'wasm') throw new UsageError(`--engine must be fast or wasm\n\n${usage.trimEnd()}`);
    if (!values.request) throw new UsageError(`--request is required\n\n${usage.trimEnd()}`);
    const requestText = values.request.startsWith('@') ? await readText(values.request.slice(1), 'request') : values.request;
    const request = parseRequest(requestText);
    const bundle = await loadBundle(values.policies, values.schema, values.entities);
    const authz = createAuthorizer(bundle, values.engine);
    try {
      const d = authz.isAuthorized(request);
      process.stdout.write(`${JSON.stringify({ decision: d.decision, reasons: d.reasons, errors: d.errors })}\n`);
      return d.decision === 'allow' ? 0 : 1;
    } finally {
      authz.dispose();
    }
  });
}
