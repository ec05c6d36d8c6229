// `lilith validate`: every check a policy repository must pass before it may be
// signed, reported as diagnostics that point at a file, line and column.
// cedar-wasm validates in strict mode; note that its `validate` answers
// type "success" even when policies fail — the findings are in validationErrors.
import * as cedar from '../cedar/wasm-loader.js';
import type { DetailedError } from '@cedar-policy/cedar-wasm/nodejs';
import { checkConfig, type ConfigIssue } from '../capsule/config-check.js';
import type { LilithConfig } from '../capsule/config.js';
import { crossCheckConfig, unknownTaintLabels } from '../capsule/config-cross-check.js';
import { longOutOfRange, parseJsonLong } from '../cedar/json-long.js';
import { PolicySetError, splitPolicies } from '../cedar/policy-set.js';
import { withExactLongs } from '../cedar/wasm-exact.js';
import { locateJsonPointer } from './json-locate.js';
import { CONFIG_FILE, ENTITIES_FILE, SCHEMA_FILE, type PolicySource } from './policy-source.js';
import { positionOfByteOffset, positionOfIndex } from './source-position.js';

export interface Diagnostic {
  /** Path relative to the policy directory, e.g. "mcp.cedar", "invariants/x.cedar", "lilith.json". */
  file: string;
  line: number;
  col: number;
  severity: 'error' | 'warning';
  message: string;
}

export interface ValidationReport {
  diagnostics: Diagnostic[];
  errorCount: number;
  warningCount: number;
  /** Policy ids of the enforced set and of the invariants, in file order (when they parsed). */
  policyIds: string[];
  invariantIds: string[];
}

interface Ctx {
  out: Diagnostic[];
}

function add(
  ctx: Ctx,
  file: string,
  text: string,
  byteOffset: number | undefined,
  message: string,
  severity: Diagnostic['severity'] = 'error',
) {
  const pos = byteOffset === undefined ? { line: 1, col: 1 } : positionOfByteOffset(text, byteOffset);
  ctx.out.push({ file, ...pos, severity, message });
}

function describe(e: DetailedError): string {
  const labels = (e.sourceLocations ?? []).map((l) => l.label).filter((l): l is string => !!l);
  let msg = e.message;
  if (labels.length) msg += ` (${labels.join('; ')})`;
  if (e.help) msg += `; help: ${e.help}`;
  return msg;
}

function addCedarErrors(
  ctx: Ctx,
  file: string,
  text: string,
  errors: DetailedError[],
  severity: Diagnostic['severity'] = 'error',
  rename?: (m: string) => string,
) {
  for (const e of errors) {
    const msg = describe(e);
    add(ctx, file, text, e.sourceLocations?.[0]?.start, rename ? rename(msg) : msg, severity);
  }
}

interface ParsedPolicy {
  /** @id, or "<file>#<n>" when missing (reported). */
  id: string;
  text: string;
  /** Cedar's JSON form (EST), when it converted. */
  json: unknown;
  /** UTF-8 byte offset of the policy text within its file. */
  byteStart: number;
}

interface ParsedFile {
  file: string;
  text: string;
  /** null when the file did not parse. */
  policies: ParsedPolicy[] | null;
}

const ID_ANNOTATION = /@id\s*\(\s*"((?:[^"\\]|\\.)*)"\s*\)/g;

/** Parses one Cedar file, reporting syntax errors, missing @id and templates. */
function parseCedarFile(ctx: Ctx, file: string, text: string): ParsedFile {
  const parts = cedar.policySetTextToParts(text);
  if (parts.type === 'failure') {
    addCedarErrors(ctx, file, text, parts.errors);
    return { file, text, policies: null };
  }
  if (parts.policy_templates.length) add(ctx, file, text, undefined, 'policy templates are not supported: write static policies');
  // cedar gives each policy's text, not its offset: find them in order (they are exact substrings).
  const policies: ParsedPolicy[] = [];
  let searchFrom = 0;
  parts.policies.forEach((policyText, index) => {
    const at = text.indexOf(policyText, searchFrom);
    const start = at >= 0 ? at : searchFrom;
    if (at >= 0) searchFrom = at + policyText.length;
    const json = cedar.policyToJson(policyText);
    const id = json.type === 'success' ? json.json.annotations?.id : undefined;
    const byteStart = Buffer.byteLength(text.slice(0, start));
    if (id === undefined || id === null || id === '') {
      ctx.out.push({
        file,
        ...positionOfIndex(text, start),
        severity: 'error',
        message: `policy #${index + 1} has no @id("…") annotation (every policy needs a stable id)`,
      });
      policies.push({ id: `${file}#${index}`, text: policyText, byteStart, json: json.type === 'success' ? json.json : null });
    } else {
      policies.push({ id, text: policyText, byteStart, json: json.type === 'success' ? json.json : null });
    }
  });
  return { file, text, policies };
}

/**
 * Strict validation of every parsed policy against the schema in one cedar call
 * (the schema is parsed once), mapping each finding back to its file and @id.
 */
function validateAgainstSchema(ctx: Ctx, files: ParsedFile[], schema: string): void {
  const where = new Map<string, { file: ParsedFile; policy: ParsedPolicy }>();
  const staticPolicies: Record<string, string> = {};
  for (const [i, file] of files.entries()) {
    for (const [j, policy] of (file.policies ?? []).entries()) {
      const key = `f${i}p${j}`;
      where.set(key, { file, policy });
      staticPolicies[key] = policy.text;
    }
  }
  if (where.size === 0) return;
  const answer = cedar.validate({ validationSettings: { mode: 'strict' }, schema, policies: { staticPolicies } });
  if (answer.type === 'failure') {
    addCedarErrors(ctx, SCHEMA_FILE, schema, answer.errors);
    return;
  }
  const report = (items: { policyId: string; error: DetailedError }[], severity: Diagnostic['severity']) => {
    for (const { policyId, error } of items) {
      const w = where.get(policyId);
      if (!w) continue;
      const msg = describe(error).replace(/`(f\d+p\d+)`/g, (whole, key: string) => `\`${where.get(key)?.policy.id ?? whole}\``);
      const offset = error.sourceLocations?.[0]?.start;
      add(ctx, w.file.file, w.file.text, w.policy.byteStart + (offset ?? 0), msg, severity);
    }
  };
  report(answer.validationErrors, 'error');
  report(answer.validationWarnings, 'warning');
}

/** Duplicate @id across every file of the repository (enforced set and invariants share one namespace). */
function checkDuplicateIds(ctx: Ctx, files: ParsedFile[]): void {
  const seen = new Map<string, string>();
  for (const f of files) {
    if (!f.policies) continue;
    for (const p of f.policies) {
      const previous = seen.get(p.id);
      if (previous !== undefined) {
        const index = Buffer.from(f.text).subarray(0, p.byteStart).toString('utf8').length;
        ID_ANNOTATION.lastIndex = 0;
        const m = ID_ANNOTATION.exec(p.text);
        ctx.out.push({
          file: f.file,
          ...positionOfIndex(f.text, index + (m?.index ?? 0)),
          severity: 'error',
          message: `duplicate policy id "${p.id}" (also in ${previous})`,
        });
      } else {
        seen.set(p.id, f.file);
      }
    }
  }
}

/** Places each unknown-taint-label finding (capsule/config-cross-check.ts) at the label inside its policy. */
function checkTaintLabels(ctx: Ctx, files: ParsedFile[], config: LilithConfig): void {
  for (const f of files) {
    for (const p of f.policies ?? []) {
      for (const issue of unknownTaintLabels([p], config)) {
        const policyIndex = Buffer.from(f.text).subarray(0, p.byteStart).toString('utf8').length;
        const within = p.text.indexOf(JSON.stringify(issue.label));
        ctx.out.push({
          file: f.file,
          ...positionOfIndex(f.text, policyIndex + Math.max(0, within)),
          severity: 'error',
          message: issue.message,
        });
      }
    }
  }
}

function jsonParse(ctx: Ctx, file: string, text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    const msg = (err as Error).message;
    const m = /position (\d+)/.exec(msg);
    const pos = m ? positionOfIndex(text, Number(m[1])) : { line: 1, col: 1 };
    ctx.out.push({ file, ...pos, severity: 'error', message: `invalid JSON: ${msg}` });
    return { ok: false };
  }
}

function addJsonIssue(ctx: Ctx, file: string, text: string, issue: ConfigIssue) {
  const where = issue.path || '/';
  ctx.out.push({
    file,
    ...positionOfIndex(text, locateJsonPointer(text, issue.path)),
    severity: 'error',
    message: `${where}: ${issue.message}`,
  });
}

interface EntityLike {
  uid?: { type?: string; id?: string };
}

/** JSON pointer of the first integer outside Cedar's 64-bit Long range in `v` (as parseJsonLong reads it); null: none. */
function longOutOfRangePointer(v: unknown, pointer = ''): string | null {
  if (longOutOfRange(v) === null) return null;
  if (typeof v !== 'object' || v === null) return pointer;
  for (const [k, x] of Array.isArray(v) ? v.entries() : Object.entries(v)) {
    const at = longOutOfRangePointer(x, `${pointer}/${String(k).replaceAll('~', '~0').replaceAll('/', '~1')}`);
    if (at !== null) return at;
  }
  return pointer;
}

function checkEntities(ctx: Ctx, text: string, schema: string | null): EntityLike[] | null {
  // JSON.parse first for its syntax diagnostics; then read again with Longs exact, as
  // the capsule and the enforcer read entities.json (9007199254740993 stays itself).
  if (!jsonParse(ctx, ENTITIES_FILE, text).ok) return null;
  let value: unknown;
  try {
    value = parseJsonLong(text);
  } catch (err) {
    ctx.out.push({ file: ENTITIES_FILE, line: 1, col: 1, severity: 'error', message: (err as Error).message });
    return null;
  }
  if (!Array.isArray(value)) {
    addJsonIssue(ctx, ENTITIES_FILE, text, { path: '', message: 'expected an array of entities' });
    return null;
  }
  const outside = longOutOfRange(value);
  if (outside !== null) {
    // Refused, never wrapped or rounded into range (as capsule building refuses it).
    addJsonIssue(ctx, ENTITIES_FILE, text, {
      path: longOutOfRangePointer(value) ?? '',
      message: `${outside} is an integer outside the 64-bit Long range`,
    });
    return null;
  }
  const entities = value as EntityLike[];
  const answer = withExactLongs(cedar.checkParseEntities, { entities: value as never, schema });
  if (answer.type === 'failure') {
    for (const e of answer.errors) {
      // cedar names the entity (`Type::"id"`) but gives no offset: find it in the array.
      const m = /`([A-Za-z_][A-Za-z0-9_:]*)::"((?:[^"\\]|\\.)*)"`/.exec(e.message);
      const index = m ? entities.findIndex((x) => x?.uid?.type === m[1] && x?.uid?.id === JSON.parse(`"${m[2]}"`)) : -1;
      addJsonIssue(ctx, ENTITIES_FILE, text, { path: index >= 0 ? `/${index}` : '', message: describe(e) });
    }
  }
  return entities;
}

/** Validates a whole policy source (directory or git tree). Never throws for content problems. */
export function validatePolicySource(src: PolicySource): ValidationReport {
  const ctx: Ctx = { out: [] };

  const schemaAnswer = cedar.checkParseSchema(src.schema);
  const schemaOk = schemaAnswer.type === 'success';
  if (!schemaOk) addCedarErrors(ctx, SCHEMA_FILE, src.schema, schemaAnswer.errors);

  const sortedKeys = (r: Record<string, string>) => Object.keys(r).sort();
  const policies = sortedKeys(src.policies).map((f) => parseCedarFile(ctx, f, src.policies[f]));
  const invariants = sortedKeys(src.invariants).map((f) => parseCedarFile(ctx, f, src.invariants[f]));
  const before = ctx.out.length;
  checkDuplicateIds(ctx, [...policies, ...invariants]);
  // The engines name policies with splitPolicies; when our positional checks found
  // nothing, it must agree, so a clean validate always means a loadable policy set.
  if (ctx.out.length === before && [...policies, ...invariants].every((f) => f.policies)) {
    try {
      splitPolicies({ ...src.policies, ...src.invariants });
    } catch (err) {
      if (!(err instanceof PolicySetError)) throw err;
      ctx.out.push({ file: err.file ?? SCHEMA_FILE, line: 1, col: 1, severity: 'error', message: err.message });
    }
  }
  if (schemaOk) validateAgainstSchema(ctx, [...policies, ...invariants], src.schema);

  const entities = checkEntities(ctx, src.entitiesText, schemaOk ? src.schema : null);

  const config = jsonParse(ctx, CONFIG_FILE, src.configText);
  if (config.ok) {
    const issues = checkConfig(config.value);
    for (const issue of issues) addJsonIssue(ctx, CONFIG_FILE, src.configText, issue);
    if (issues.length === 0 && entities)
      for (const issue of crossCheckConfig(config.value as LilithConfig, entities)) addJsonIssue(ctx, CONFIG_FILE, src.configText, issue);
    if (issues.length === 0) checkTaintLabels(ctx, [...policies, ...invariants], config.value as LilithConfig);
  }

  const order = (d: Diagnostic) => d.file;
  const diagnostics = ctx.out.sort((a, b) => order(a).localeCompare(order(b)) || a.line - b.line || a.col - b.col);
  return {
    diagnostics,
    errorCount: diagnostics.filter((d) => d.severity === 'error').length,
    warningCount: diagnostics.filter((d) => d.severity === 'warning').length,
    policyIds: policies.flatMap((f) => f.policies?.map((p) => p.id) ?? []),
    invariantIds: invariants.flatMap((f) => f.policies?.map((p) => p.id) ?? []),
  };
}

export function formatDiagnostic(d: Diagnostic, fileLabel: string, format: 'text' | 'github'): string {
  if (format === 'github') {
    // GitHub workflow commands: properties are escaped differently from the message.
    const prop = (s: string) =>
      s.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A').replace(/:/g, '%3A').replace(/,/g, '%2C');
    const msg = d.message.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
    return `::${d.severity} file=${prop(fileLabel)},line=${d.line},col=${d.col}::${msg}`;
  }
  return `${fileLabel}:${d.line}:${d.col}: ${d.severity === 'warning' ? 'warning: ' : ''}${d.message}`;
}
