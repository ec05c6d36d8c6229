// Timestamps (freshness) and root-signed resets (fast-forward recovery), at the unit
// level: which documents verify, and when a reset applies.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  applyReset,
  CapsuleError,
  parseTrustValue,
  signCapsule,
  signReset,
  signTimestamp,
  stateFor,
  trustFileV2,
  verifyCapsule,
  verifyReset,
  verifyTimestamp,
  type CapsuleErrorCode,
  type CapsuleState,
} from '../../capsule/index.js';
import { keys, NOW, payload, trustOf } from './fixtures.js';

const [root, capsule, ts, other] = keys(4);
const trust = parseTrustValue(
  trustFileV2({
    version: 2,
    root: { keys: [root], threshold: 1 },
    capsule: { keys: [capsule], threshold: 1 },
    timestamp: { keys: [ts], threshold: 1, staleAfterS: 60, failAfterS: 600 },
  }),
);
const D1 = '1'.repeat(64);
const D2 = '2'.repeat(64);
const code = (c: CapsuleErrorCode) => (e: unknown) => e instanceof CapsuleError && e.code === c;

describe('timestamps', () => {
  const sign = (o: Partial<{ now: Date; validityMs: number }> = {}, k = [ts]) =>
    signTimestamp({ digest: D1, watermark: 4, now: o.now ?? NOW, validityMs: o.validityMs ?? 60_000 }, k);
  test('signed by the timestamp role, current: verifies', () => {
    const v = verifyTimestamp(sign(), trust, new Date(NOW.getTime() + 1000));
    assert.equal(v.payload.capsule_digest, D1);
    assert.deepEqual(v.keyids, [ts.keyid]);
  });
  test('refusals: other role, expired, future, longer than fail_after_s, no timestamp role', () => {
    assert.throws(() => verifyTimestamp(sign({}, [capsule]), trust, NOW), code('unknown_key'));
    assert.throws(() => verifyTimestamp(sign(), trust, new Date(NOW.getTime() + 60_000)), code('expired'));
    assert.throws(() => verifyTimestamp(sign({ now: new Date(NOW.getTime() + 3600_000) }), trust, NOW), code('not_yet_valid'));
    assert.throws(() => verifyTimestamp(sign({ validityMs: 601_000 }), trust, NOW), code('validity_too_long'));
    assert.throws(() => verifyTimestamp(sign(), trustOf([ts]), NOW), code('bad_trust'));
  });
});

describe('resets', () => {
  const state: CapsuleState = { watermark: 2 ** 53 - 2, digest: D1, accepted_at: NOW.toISOString() };
  const reset = (k = [root], o: Partial<{ undoes: string; watermark: number; trustVersion: number; at: Date }> = {}) =>
    signReset(
      {
        undoes_digest: o.undoes ?? D1,
        watermark: o.watermark ?? 3,
        digest: D2,
        trust_version: o.trustVersion ?? 2,
        issued_at: (o.at ?? NOW).toISOString(),
      },
      k,
    );
  test('root-signed, applies to the state holding the undone capsule, sets not_before', () => {
    const v = verifyReset(reset(), trust, NOW);
    const next = applyReset(state, v, NOW);
    assert.deepEqual(next, { watermark: 3, digest: D2, accepted_at: NOW.toISOString(), not_before: NOW.toISOString(), reset: v.id });
    assert.throws(() => applyReset(next, v, NOW), code('mismatch'), 'applies once');
  });
  test('refusals: not root, unknown trust version, another state, not lowering, issued before the undone capsule', () => {
    assert.throws(() => verifyReset(reset([capsule]), trust, NOW), code('unknown_key'));
    assert.throws(() => verifyReset(reset([other]), trust, NOW), code('unknown_key'));
    assert.throws(() => verifyReset(reset([root], { trustVersion: 3 }), trust, NOW), code('mismatch'));
    const v = verifyReset(reset(), trust, NOW);
    assert.throws(() => applyReset(null, v, NOW), code('mismatch'));
    assert.throws(() => applyReset({ ...state, digest: D2 }, v, NOW), code('mismatch'));
    assert.throws(() => applyReset({ ...state, watermark: 3 }, v, NOW), code('mismatch'));
    assert.throws(() => applyReset(state, v, NOW, new Date(NOW.getTime() + 1)), code('mismatch'));
  });
  test('not_before survives the capsules accepted after the reset, and refuses older ones', async () => {
    const after = applyReset(state, verifyReset(reset(), trust, NOW), NOW);
    const later = new Date(NOW.getTime() + 60_000);
    const next = verifyCapsule(signCapsule(await payload(4, {}, later), [capsule]), trust, after, later);
    const kept = stateFor(next, later, after);
    assert.equal(kept.not_before, NOW.toISOString());
    const old = signCapsule(await payload(2 ** 53 - 2, {}, new Date(NOW.getTime() - 1000)), [capsule]);
    assert.throws(() => verifyCapsule(old, trust, kept, later), code('before_reset'));
  });
});
