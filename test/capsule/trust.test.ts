// Trust files and key rotation: a new trust file needs a threshold of the old
// keys AND a threshold of its own keys.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  CapsuleError,
  parseTrust,
  signCapsule,
  signTrustUpdate,
  trustFromKeys,
  verifyCapsule,
  verifyTrustUpdate,
  type CapsuleErrorCode,
} from '../../capsule/index.js';
import { keys, NOW, payload, trustOf } from './fixtures.js';

const [a1, a2, a3, b1, b2, b3, mallory] = keys(7);
const oldTrust = trustOf([a1, a2, a3], 2);
const nextFile = trustFromKeys([b1, b2, b3], 2);

function code(c: CapsuleErrorCode) {
  return (err: unknown) => err instanceof CapsuleError && err.code === c;
}

describe('trust file parsing', () => {
  test('keyid must be the sha256 of the public key', () => {
    const file = trustFromKeys([a1], 1);
    file.keys[0].keyid = b1.keyid;
    assert.throws(
      () => parseTrust(JSON.stringify(file)),
      (e: unknown) => code('bad_trust')(e) && /sha256/.test((e as Error).message),
    );
  });
  test('threshold must be between 1 and the number of keys', () => {
    assert.throws(() => parseTrust(JSON.stringify(trustFromKeys([a1], 2))), code('bad_trust'));
    assert.throws(() => parseTrust(JSON.stringify(trustFromKeys([a1], 0))), code('bad_trust'));
  });
  test('the same key listed twice is refused (it would inflate the threshold)', () => {
    const file = trustFromKeys([a1, a1], 2);
    assert.throws(
      () => parseTrust(JSON.stringify(file)),
      (e: unknown) => code('bad_trust')(e) && /twice/.test((e as Error).message),
    );
  });
  test('not JSON → bad_trust', () => {
    assert.throws(() => parseTrust('{"version": 1,'), code('bad_trust'));
  });
});

describe('key rotation', () => {
  test('accepted when signed by 2 of the old keys and 2 of the new keys; the new trust then verifies capsules', async () => {
    const update = signTrustUpdate(nextFile, [a1, a3, b2, b3]);
    const next = verifyTrustUpdate(update, oldTrust, NOW);
    assert.equal(next.threshold, 2);
    assert.deepEqual([...next.keys.keys()].sort(), [b1, b2, b3].map((k) => k.keyid).sort());
    const capsule = signCapsule(await payload(1), [b1, b2]);
    assert.equal(verifyCapsule(capsule, next, null, NOW).payload.watermark, 1);
    // …and the old keys no longer sign capsules for it.
    const oldSigned = signCapsule(await payload(2), [a1, a2]);
    assert.throws(() => verifyCapsule(oldSigned, next, null, NOW), code('unknown_key'));
  });

  test('refused with only the new keys (old threshold not met)', () => {
    const update = signTrustUpdate(nextFile, [b1, b2, b3]);
    assert.throws(
      () => verifyTrustUpdate(update, oldTrust, NOW),
      (e: unknown) => code('unknown_key')(e) && /current keys/.test((e as Error).message),
    );
  });

  test('refused with one old key and all new keys', () => {
    const update = signTrustUpdate(nextFile, [a1, b1, b2, b3]);
    assert.throws(
      () => verifyTrustUpdate(update, oldTrust, NOW),
      (e: unknown) => code('below_threshold')(e) && /current keys/.test((e as Error).message),
    );
  });

  test('refused with the old keys only (new threshold not met): old keys cannot hand control to keys that never signed', () => {
    const update = signTrustUpdate(trustFromKeys([mallory, b1], 2), [a1, a2, mallory]);
    assert.throws(
      () => verifyTrustUpdate(update, oldTrust, NOW),
      (e: unknown) => code('below_threshold')(e) && /new keys/.test((e as Error).message),
    );
  });

  test('one old key signing twice does not meet the old threshold', () => {
    const update = signTrustUpdate(nextFile, [a1, a1, b1, b2]);
    assert.throws(() => verifyTrustUpdate(update, oldTrust, NOW), code('below_threshold'));
  });

  test('tampered new trust file → bad_signature', () => {
    const update = signTrustUpdate(nextFile, [a1, a2, b1, b2]);
    const env = JSON.parse(Buffer.from(update).toString('utf8'));
    const body = JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8'));
    body.threshold = 1;
    env.payload = Buffer.from(JSON.stringify(body)).toString('base64');
    assert.throws(() => verifyTrustUpdate(Buffer.from(JSON.stringify(env)), oldTrust, NOW), code('bad_signature'));
  });

  test('a capsule envelope is not a trust update', async () => {
    const capsule = signCapsule(await payload(1), [a1, a2]);
    assert.throws(() => verifyTrustUpdate(capsule, oldTrust, NOW), code('malformed'));
  });
});
