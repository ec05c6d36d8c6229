// Issue 16: verification cost and parsing are bounded before the work, trust files
// refuse keys that would accept forged signatures, and validity is capped.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import nacl from 'tweetnacl';
import { CapsuleError, keyIdOf, parseTrust, signCapsule, trustFromKeys, verifyCapsule } from '../../capsule/index.js';
import { publicKeyProblem } from '../../capsule/ed25519-point.js';
import { checkJsonShape, PAYLOAD_SHAPE } from '../../capsule/json-limits.js';
import { DAY, editEnvelope, keys, NOW, payload, trustOf } from './fixtures.js';

const [k1, k2, k3] = keys(3);

function code(c: string, pattern?: RegExp) {
  return (err: unknown) => err instanceof CapsuleError && err.code === c && (!pattern || pattern.test(err.message));
}

/** Counts Ed25519 verifications (tweetnacl is a CJS object: its function is wrapped, not mocked). */
function countVerifications<T>(fn: () => T): { result: T | Error; count: number } {
  const real = nacl.sign.detached.verify;
  let count = 0;
  nacl.sign.detached.verify = (m, s, p) => {
    count++;
    return real(m, s, p);
  };
  try {
    return { result: fn(), count };
  } catch (err) {
    return { result: err as Error, count };
  } finally {
    nacl.sign.detached.verify = real;
  }
}

describe('bounded signature verification', () => {
  test('64 junk signatures naming a trusted keyid cost one verification', async () => {
    const bytes = editEnvelope(signCapsule(await payload(1), [k1]), (env) => {
      const junk = Buffer.alloc(64, 9).toString('base64');
      env.signatures = Array.from({ length: 64 }, () => ({ keyid: k1.keyid, sig: junk }));
    });
    const r = countVerifications(() => verifyCapsule(bytes, trustOf([k1]), null, NOW));
    assert.ok(code('bad_signature')(r.result));
    assert.equal(r.count, 1);
  });

  test('a valid signature followed by 63 junk ones: one verification, accepted (stops at the threshold)', async () => {
    const bytes = editEnvelope(signCapsule(await payload(1), [k1]), (env) => {
      for (let i = 0; i < 63; i++) env.signatures.push({ keyid: k2.keyid, sig: Buffer.alloc(64, i).toString('base64') });
    });
    const r = countVerifications(() => verifyCapsule(bytes, trustOf([k1, k2, k3], 1), null, NOW));
    assert.equal((r.result as { payload: { watermark: number } }).payload.watermark, 1);
    assert.equal(r.count, 1);
  });

  test('never more verifications than the trust file has keys', async () => {
    const bytes = editEnvelope(signCapsule(await payload(1), [k1]), (env) => {
      const sig = env.signatures[0].sig;
      env.signatures = [];
      for (const k of [k1, k2, k3]) for (let i = 0; i < 21; i++) env.signatures.push({ keyid: k.keyid, sig });
    });
    const r = countVerifications(() => verifyCapsule(bytes, trustOf([k1, k2, k3], 3), null, NOW));
    assert.ok(r.count <= 3, `${r.count} verifications`);
  });

  test('keyids must be sha256 hex (they are echoed in refusals)', async () => {
    const bytes = editEnvelope(signCapsule(await payload(1), [k1]), (env) => {
      env.signatures[0].keyid = 'x'.repeat(100_000);
    });
    assert.throws(() => verifyCapsule(bytes, trustOf([k1]), null, NOW), code('malformed', /keyid is not a 64-character/));
  });
});

describe('bounded JSON', () => {
  test('a deeply nested payload is refused from the scan; the bundled capsule is well inside the payload limits', async () => {
    assert.throws(() => checkJsonShape(Buffer.from('['.repeat(100)), PAYLOAD_SHAPE, 'payload'), code('too_large', /deeper than 32/));
    checkJsonShape(Buffer.from(JSON.stringify(await payload(1))), PAYLOAD_SHAPE, 'payload');
  });
  test('brackets inside strings do not count', () => {
    checkJsonShape(Buffer.from(JSON.stringify({ a: '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["\\' })), PAYLOAD_SHAPE, 'doc');
  });
  test('a refusal of non-JSON says where, never what', () => {
    assert.throws(
      () => verifyCapsule(Buffer.from('{"payloadType": SECRET-PASSWORD}'), trustOf([k1]), null, NOW),
      (err: unknown) => code('malformed')(err) && !/SECRET/.test((err as Error).message),
    );
  });
});

describe('trust file keys', () => {
  const identity = new Uint8Array(32);
  identity[0] = 1;

  test('the identity point accepts a forged signature in tweetnacl — so trust files refuse it', async () => {
    // The forged signature (R = identity, S = 0) verifies for any message under this "key".
    const forged = new Uint8Array(64);
    forged[0] = 1;
    assert.equal(nacl.sign.detached.verify(Buffer.from('any capsule'), forged, identity), true);
    const file = trustFromKeys([{ keyid: keyIdOf(identity), publicKey: identity }], 1);
    assert.throws(() => parseTrust(JSON.stringify(file)), code('bad_trust', /small-order point/));
  });

  test('all 8 small-order points and non-canonical encodings are refused; real keys pass', () => {
    const hex = [
      '0100000000000000000000000000000000000000000000000000000000000000',
      '0000000000000000000000000000000000000000000000000000000000000000',
      '0000000000000000000000000000000000000000000000000000000000000080',
      '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
      'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
      '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85',
      'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
      'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
    ];
    for (const h of hex) assert.ok(publicKeyProblem(Buffer.from(h, 'hex')), `${h} refused`);
    assert.match(publicKeyProblem(Buffer.alloc(32, 0xff))!, /not a canonical encoding/);
    for (const k of keys(5)) assert.equal(publicKeyProblem(k.publicKey), null);
  });
});

describe('maximum validity period', () => {
  test('a capsule valid longer than the trust file allows is refused (default 90 days)', async () => {
    const long = signCapsule(await payload(1, { expires_at: new Date(NOW.getTime() + 400 * DAY).toISOString() }), [k1]);
    assert.throws(() => verifyCapsule(long, trustOf([k1]), null, NOW), code('validity_too_long', /longer than .* maximum of 90 days/));
  });
  test('max_validity_s in the trust file sets the bound', async () => {
    const file = { ...trustFromKeys([k1], 1), max_validity_s: 7 * 86_400 };
    const capsule = signCapsule(await payload(1), [k1]); // 30 days
    assert.throws(() => verifyCapsule(capsule, parseTrust(JSON.stringify(file)), null, NOW), code('validity_too_long'));
    assert.equal(verifyCapsule(capsule, trustOf([k1]), null, NOW).payload.watermark, 1);
  });
});
