// Runs Cedar's integration corpus (test/fixtures/cedar-integration, Apache-2.0)
// through createAuthorizer: every test's policies, schema and entities become one
// engine, every request is decided and compared with the corpus's expectation
// (decision, reasons, erroring policies). JSON is read with the Long-preserving
// reader, so ±2^63 and other Longs beyond 2^53 arrive exact.
import '../../cedar/fast/v8-flags.js';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as cedar from '../../cedar/wasm-loader.js';
import { createAuthorizer } from '../../cedar/index.js';
import { parseJsonLong } from '../../cedar/json-long.js';
import type { NamedPolicy } from '../../cedar/policy-set.js';
import type { Authorizer, AuthzRequest, Decision, Entity, PolicyBundle } from '../../cedar/types.js';

export const FIXTURE = resolve(import.meta.dirname, '../../../test/fixtures/cedar-integration');

interface CorpusRequest {
  description: string;
  principal: AuthzRequest['principal'];
  action: AuthzRequest['action'];
  resource: AuthzRequest['resource'];
  context: AuthzRequest['context'];
  decision: 'allow' | 'deny';
  reason: string[];
  errors: string[];
}

interface CorpusTest {
  policies: string;
  entities: string;
  schema: string;
  requests: CorpusRequest[];
}

export interface CorpusStats {
  tests: number;
  requests: number;
  /** Tests whose policy set the compiled engine took. */
  compiled: number;
  /** Tests answered by cedar-wasm because the compiler refused them, with the reasons. */
  fallback: number;
  fallbackReasons: Map<string, number>;
  /** Requests the engine rejected as malformed (request validation). */
  requestErrors: number;
  allow: number;
  /** Requests whose outcome differs from the corpus, as `test#request: what`. */
  disagreements: string[];
}

/** Unpacks the corpus into a fresh temporary directory; the hand-written tests are read in place. */
export function unpackCorpus(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'lilith-cedar-corpus-'));
  execFileSync('tar', ['-xzf', join(FIXTURE, 'corpus-tests.tar.gz'), '-C', dir]);
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Every test file: the generated corpus under `dir`, then the hand-written ones. Paths inside are relative to the returned base. */
export function corpusFiles(dir: string): { base: string; file: string }[] {
  const out: { base: string; file: string }[] = [];
  for (const f of readdirSync(join(dir, 'corpus-tests')).sort())
    if (f.endsWith('.json') && !f.endsWith('.entities.json')) out.push({ base: dir, file: join('corpus-tests', f) });
  for (const sub of readdirSync(join(FIXTURE, 'tests')).sort())
    for (const f of readdirSync(join(FIXTURE, 'tests', sub)).sort())
      if (f.endsWith('.json')) out.push({ base: FIXTURE, file: join('tests', sub, f) });
  return out;
}

/** Policies named policy0..N in text order, as the upstream harness names them. */
function namedPolicies(text: string): NamedPolicy[] {
  const parts = cedar.policySetTextToParts(text);
  if (parts.type === 'failure') throw new Error(`policies: ${parts.errors.map((e) => e.message).join('; ')}`);
  return parts.policies.map((p, i) => {
    const json = cedar.policyToJson(p);
    if (json.type === 'failure') throw new Error(`policy ${i}: ${json.errors.map((e) => e.message).join('; ')}`);
    return { id: `policy${i}`, file: 'corpus.cedar', text: p, json: json.json };
  });
}

const errorIds = (d: Decision) => d.errors.map((e) => e.slice(0, e.indexOf(': '))).sort();
const sorted = (xs: string[]) => [...xs].sort().join(',');

/** Empty when `got` is the corpus's expectation. */
export function compare(got: Decision, want: CorpusRequest): string {
  if (got.decision !== want.decision) return `decision ${got.decision}, expected ${want.decision} (${JSON.stringify(got.errors)})`;
  if (sorted(got.reasons) !== sorted(want.reason)) return `reasons [${sorted(got.reasons)}], expected [${sorted(want.reason)}]`;
  if (errorIds(got).join(',') !== sorted(want.errors))
    return `erroring policies [${errorIds(got).join(',')}], expected [${sorted(want.errors)}] (${JSON.stringify(got.errors)})`;
  return '';
}

export function runCorpus(files: { base: string; file: string }[], onEngine?: (a: Authorizer, test: string) => void): CorpusStats {
  const st: CorpusStats = {
    tests: 0,
    requests: 0,
    compiled: 0,
    fallback: 0,
    fallbackReasons: new Map(),
    requestErrors: 0,
    allow: 0,
    disagreements: [],
  };
  // Identical inputs share one engine (policy text + schema + entities).
  const engines = new Map<string, Authorizer>();
  for (const { base, file } of files) {
    const t = parseJsonLong(readFileSync(join(base, file), 'utf8')) as CorpusTest;
    const policyText = readFileSync(join(base, t.policies), 'utf8');
    const schema = readFileSync(join(base, t.schema), 'utf8');
    const entitiesText = readFileSync(join(base, t.entities), 'utf8');
    const key = `${policyText}\0${schema}\0${entitiesText}`;
    let engine = engines.get(key);
    st.tests++;
    if (engine === undefined) {
      const bundle: PolicyBundle = {
        policies: {},
        schema,
        entities: parseJsonLong(entitiesText) as Entity[],
        prepared: { policies: namedPolicies(policyText), schemaJson: cedar.schemaToJsonWithResolvedTypes(schema) },
      };
      let why = '';
      engine = createAuthorizer(bundle, 'fast', { log: (line) => (why = line) });
      if (engine.engine === 'wasm') {
        const reason = why.replace(/^.*cannot take this policy set \((.*)\); using cedar-wasm$/, '$1');
        st.fallbackReasons.set(reason, (st.fallbackReasons.get(reason) ?? 0) + 1);
      }
      engines.set(key, engine);
    }
    if (engine.engine === 'fast') st.compiled++;
    else st.fallback++;
    onEngine?.(engine, file);
    t.requests.forEach((r, i) => {
      const d = engine.isAuthorized({ principal: r.principal, action: r.action, resource: r.resource, context: r.context });
      st.requests++;
      if (d.decision === 'allow') st.allow++;
      if (d.errors.some((e) => e.startsWith('request: '))) st.requestErrors++;
      const diff = compare(d, r);
      if (diff) st.disagreements.push(`${engine.engine === 'wasm' ? '[cedar-wasm fallback] ' : ''}${file}#${i}: ${diff}`);
    });
  }
  for (const e of engines.values()) e.dispose();
  return st;
}
