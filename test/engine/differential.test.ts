// The compiled engine must agree with cedar-wasm on every decision: random policy
// sets over a schema with entity attributes, hierarchies, optional attributes and
// sets, an enumerated entity type, entity tags, datetime/duration values and
// functions, in no namespace or a (nested) schema namespace; random entities
// (static and per request) and requests, including malformed ones. Sizes: LILITH_DIFF_BUNDLES × LILITH_DIFF_REQUESTS (policies per bundle:
// LILITH_DIFF_POLICIES); LILITH_DIFF_SEED reproduces a run (bundle i uses seed + i).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runDifferential } from './diff.js';

const num = (name: string, dflt: number) => (process.env[name] ? Number(process.env[name]) : dflt);

test('compiled engine agrees with cedar-wasm on random policies, entities and requests', () => {
  const seed = num('LILITH_DIFF_SEED', Math.floor(Math.random() * 2 ** 31));
  const bundles = num('LILITH_DIFF_BUNDLES', 50);
  const requests = num('LILITH_DIFF_REQUESTS', 200);
  const policies = num('LILITH_DIFF_POLICIES', 24);
  const started = Date.now();
  const st = runDifferential(seed, bundles, requests, policies);
  const summary = `seed ${seed}: ${st.bundles} policy sets (${st.namespaced} in a namespace, ${st.skippedBundles} rejected by cedar), ${st.requests} requests, ${st.policyEvaluations} policy evaluations; wasm said allow ${st.allow} / deny ${st.deny}, ${st.requestFailures} malformed requests, ${st.policyErrors} policy errors; ${Date.now() - started} ms`;
  process.stdout.write(`# ${summary}\n`);
  assert.deepEqual(
    st.failures,
    [],
    `${st.failures.length} disagreement(s); reproduce with LILITH_DIFF_SEED=${seed}\n${st.failures.join('\n\n')}`,
  );
  // The run must actually exercise both outcomes and the error paths.
  assert.ok(st.requests >= bundles * requests * 0.9, summary);
  assert.ok(st.allow > 0 && st.deny > 0 && st.policyErrors > 0 && st.requestFailures > 0, summary);
  assert.ok(st.namespaced > 0 && st.namespaced < st.bundles, summary);
});
