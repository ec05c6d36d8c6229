// Differential harness: the compiled engine against cedar-wasm on random bundles.
import '../../cedar/fast/v8-flags.js';
import { FastAuthorizer } from '../../cedar/fast/fast-authorizer.js';
import { WasmAuthorizer } from '../../cedar/wasm-authorizer.js';
import type { AuthzRequest, Decision, PolicyBundle } from '../../cedar/types.js';
import { Rng, randomBundle, randomRequest } from './gen.js';

/** Errors name their policy before ": "; messages may differ between engines. */
function errorIds(d: Decision): string[] {
  return d.errors.map((e) => e.slice(0, e.indexOf(': '))).sort();
}

function isRequestFailure(d: Decision): boolean {
  return d.errors.length > 0 && d.errors.every((e) => e.startsWith('request: '));
}

/** Empty when both agree; otherwise what differs. */
export function disagreement(fast: Decision, wasm: Decision): string {
  if (fast.decision !== wasm.decision) return `decision ${fast.decision} vs ${wasm.decision}`;
  if (isRequestFailure(fast) !== isRequestFailure(wasm)) return `request failure ${isRequestFailure(fast)} vs ${isRequestFailure(wasm)}`;
  if (isRequestFailure(wasm)) return '';
  const fr = [...fast.reasons].sort().join(',');
  const wr = [...wasm.reasons].sort().join(',');
  if (fr !== wr) return `reasons [${fr}] vs [${wr}]`;
  const fe = errorIds(fast).join(',');
  const we = errorIds(wasm).join(',');
  if (fe !== we) return `errored policies [${fe}] vs [${we}]`;
  return '';
}

export interface DiffStats {
  bundles: number;
  requests: number;
  policyEvaluations: number;
  allow: number;
  deny: number;
  requestFailures: number;
  policyErrors: number;
  skippedBundles: number;
  /** Bundles whose schema is in a namespace. */
  namespaced: number;
  failures: string[];
}

function show(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `${x}n` : x));
}

/** Runs `bundles` random bundles × `requests` requests from `seed` (bundle i uses seed + i). */
export function runDifferential(seed: number, bundles: number, requests: number, policies: number, maxFailures = 5): DiffStats {
  const st: DiffStats = {
    bundles: 0,
    requests: 0,
    policyEvaluations: 0,
    allow: 0,
    deny: 0,
    requestFailures: 0,
    policyErrors: 0,
    skippedBundles: 0,
    namespaced: 0,
    failures: [],
  };
  for (let i = 0; i < bundles && st.failures.length < maxFailures; i++) {
    const bseed = (seed + i) >>> 0;
    const r = new Rng(bseed);
    const { bundle, requestPool, ns } = randomBundle(r, policies);
    let wasm: WasmAuthorizer;
    try {
      wasm = new WasmAuthorizer(bundle);
    } catch {
      st.skippedBundles++; // the generator wrote text cedar rejects (rare); nothing to compare
      continue;
    }
    let fast: FastAuthorizer;
    try {
      fast = new FastAuthorizer(bundle);
    } catch (err) {
      st.failures.push(`seed ${bseed}: fast engine could not compile: ${(err as Error).message}\n${bundle.policies['random.cedar']}`);
      wasm.dispose();
      continue;
    }
    st.bundles++;
    if (ns) st.namespaced++;
    for (let j = 0; j < requests; j++) {
      const req: AuthzRequest = randomRequest(r, requestPool, ns);
      const w = wasm.isAuthorized(req);
      const f = fast.isAuthorized(req);
      st.requests++;
      st.policyEvaluations += fast.applicableCount(req.action.id, req.principal.type, req.resource.type, req.action.type);
      if (w.decision === 'allow') st.allow++;
      else st.deny++;
      if (isRequestFailure(w)) st.requestFailures++;
      else st.policyErrors += w.errors.length;
      const diff = disagreement(f, w);
      if (diff) {
        st.failures.push(
          `seed ${bseed} request ${j}: ${diff}\n  fast: ${show(f)}\n  wasm: ${show(w)}\n  request: ${show(req)}\n  policies:\n${bundle.policies['random.cedar']}\n  static entities: ${show(bundle.entities)}`,
        );
        if (st.failures.length >= maxFailures) break;
      }
    }
    wasm.dispose();
  }
  return st;
}

export function reproduce(bundle: PolicyBundle, req: AuthzRequest): { fast: Decision; wasm: Decision } {
  const f = new FastAuthorizer(bundle);
  const w = new WasmAuthorizer(bundle);
  const out = { fast: f.isAuthorized(req), wasm: w.isAuthorized(req) };
  w.dispose();
  return out;
}
