// Cedar's own integration corpus (7,809 generated tests, 62,472 requests, plus the
// hand-written tests), vendored in test/fixtures/cedar-integration, decided by the
// compiled engine through createAuthorizer. Every policy set must compile (no
// cedar-wasm fallback) and every request must get the corpus's decision, reasons
// and erroring policies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { corpusFiles, runCorpus, unpackCorpus } from './corpus.js';

test('compiled engine decides all of Cedar integration corpus as expected, without fallback', () => {
  const { dir, cleanup } = unpackCorpus();
  try {
    const started = Date.now();
    const files = corpusFiles(dir);
    const st = runCorpus(files);
    const reasons = [...st.fallbackReasons].sort((a, b) => b[1] - a[1]).map(([r, n]) => `${n} × ${r}`);
    const summary = `${st.tests} tests, ${st.requests} requests (${st.allow} allowed, ${st.requestErrors} malformed): compiled ${st.compiled}, fallback ${st.fallback}, disagreements ${st.disagreements.length}; ${Date.now() - started} ms`;
    process.stdout.write(`# ${summary}\n`);
    for (const r of reasons.slice(0, 20)) process.stdout.write(`#   fallback: ${r}\n`);
    assert.ok(st.tests > 7800 && st.requests > 62000, summary);
    assert.deepEqual(st.disagreements.slice(0, 20), [], `${st.disagreements.length} disagreement(s)\n${summary}`);
    assert.equal(st.fallback, 0, `${summary}\n${reasons.join('\n')}`);
    assert.equal(st.compiled, st.tests, summary);
  } finally {
    cleanup();
  }
});
