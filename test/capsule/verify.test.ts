// Capsule verification: a signed capsule round-trips, and every way of getting
// it wrong is refused with its own code while the stored state stays untouched.
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { join } from 'node:path';
import {
  acceptCapsule,
  CapsuleError,
  MAX_CAPSULE_BYTES,
  readState,
  sha256Hex,
  signCapsule,
  signEnvelope,
  CAPSULE_PAYLOAD_TYPE,
  encodePayload,
  verifyCapsule,
  writeStateAtomic,
  type CapsuleErrorCode,
} from '../../capsule/index.js';
import { DAY, editEnvelope, keys, NOW, payload, tempDir, trustOf } from './fixtures.js';

const [k1, k2, k3, outsider] = keys(4);
const trust1 = trustOf([k1]);

function refusedWith(code: CapsuleErrorCode, pattern?: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof CapsuleError, `expected CapsuleError, got ${String(err)}`);
    assert.equal(err.code, code, `code: ${err.message}`);
    if (pattern) assert.match(err.message, pattern);
    return true;
  };
}

describe('sign/verify round trip', () => {
  test('a capsule signed by a trusted key verifies and yields the exact payload, digest and keyid', async () => {
    const p = await payload(7);
    const bytes = signCapsule(p, [k1]);
    const v = verifyCapsule(bytes, trust1, null, NOW);
    assert.deepEqual(v.payload, p);
    assert.equal(v.digest, sha256Hex(encodePayload(p)));
    assert.deepEqual(v.keyids, [k1.keyid]);
    assert.equal(v.alreadyAccepted, false);
    assert.equal(v.payload.policies['mcp.cedar'], p.policies['mcp.cedar']);
  });

  test('the envelope is DSSE-shaped with the capsule payload type', async () => {
    const bytes = signCapsule(await payload(1), [k1]);
    const env = JSON.parse(Buffer.from(bytes).toString('utf8'));
    assert.equal(env.payloadType, 'application/vnd.lilith.capsule+json');
    assert.equal(typeof env.payload, 'string');
    assert.deepEqual(Object.keys(env.signatures[0]).sort(), ['keyid', 'sig']);
    assert.equal(Buffer.from(env.signatures[0].sig, 'base64').length, 64);
  });

  test('threshold 2 of 3: two distinct keys verify', async () => {
    const bytes = signCapsule(await payload(1), [k1, k3]);
    const v = verifyCapsule(bytes, trustOf([k1, k2, k3], 2), null, NOW);
    assert.deepEqual(v.keyids, [k1.keyid, k3.keyid].sort());
  });
});

describe('refusals', () => {
  const dir = { path: '', remove: async () => {} };
  let stateBytes: Buffer;
  const accepted = { watermark: 10, digest: 'a'.repeat(64), accepted_at: '2026-05-01T00:00:00.000Z' };

  before(async () => {
    Object.assign(dir, await tempDir());
    await writeStateAtomic(dir.path, accepted);
    stateBytes = await readFile(join(dir.path, 'state.json'));
  });
  after(() => dir.remove());

  /** Asserts the refusal through acceptCapsule (which writes state on success) and that state.json did not change. */
  async function refuses(bytes: Uint8Array, trust: ReturnType<typeof trustOf>, code: CapsuleErrorCode, pattern?: RegExp, now = NOW) {
    await assert.rejects(acceptCapsule(bytes, trust, dir.path, now), refusedWith(code, pattern));
    assert.deepEqual(await readFile(join(dir.path, 'state.json')), stateBytes, 'state file is byte-identical after the refusal');
  }

  test('tampered payload → bad_signature', async () => {
    const bytes = signCapsule(await payload(11), [k1]);
    const tampered = editEnvelope(bytes, (env) => {
      const p = JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8'));
      p.policies['mcp.cedar'] = 'permit (principal, action, resource);';
      env.payload = Buffer.from(JSON.stringify(p)).toString('base64');
    });
    await refuses(tampered, trust1, 'bad_signature', /does not verify/);
  });

  test('tampered signature → bad_signature', async () => {
    const bytes = signCapsule(await payload(11), [k1]);
    const tampered = editEnvelope(bytes, (env) => {
      const sig = Buffer.from(env.signatures[0].sig, 'base64');
      sig[10] ^= 0x01;
      env.signatures[0].sig = sig.toString('base64');
    });
    await refuses(tampered, trust1, 'bad_signature');
  });

  test('a signature that is not 64 bytes → bad_signature, not a crash', async () => {
    const tampered = editEnvelope(signCapsule(await payload(11), [k1]), (env) => {
      env.signatures[0].sig = Buffer.alloc(12).toString('base64');
    });
    await refuses(tampered, trust1, 'bad_signature');
  });

  test('signed by a key the trust file does not list → unknown_key', async () => {
    await refuses(signCapsule(await payload(11), [outsider]), trust1, 'unknown_key', new RegExp(outsider.keyid));
  });

  test('one valid signature where two are required → below_threshold', async () => {
    await refuses(signCapsule(await payload(11), [k1]), trustOf([k1, k2], 2), 'below_threshold', /1 of 2/);
  });

  test('one key signing twice does not count twice → below_threshold', async () => {
    const bytes = signCapsule(await payload(11), [k1, k1]);
    const env = JSON.parse(Buffer.from(bytes).toString('utf8'));
    assert.equal(env.signatures.length, 2);
    assert.equal(env.signatures[0].keyid, env.signatures[1].keyid);
    await refuses(bytes, trustOf([k1, k2], 2), 'below_threshold', /1 of 2/);
  });

  test('a signature relabelled with another trusted keyid does not count for that key', async () => {
    const relabelled = editEnvelope(signCapsule(await payload(11), [k1, k1]), (env) => {
      env.signatures[1].keyid = k2.keyid;
    });
    await refuses(relabelled, trustOf([k1, k2], 2), 'bad_signature');
  });

  test('lower watermark than the accepted one → rollback', async () => {
    await refuses(signCapsule(await payload(9), [k1]), trust1, 'rollback', /9 is lower than the accepted watermark 10/);
  });

  test('same watermark, different digest → watermark_reuse', async () => {
    await refuses(signCapsule(await payload(10), [k1]), trust1, 'watermark_reuse');
  });

  test('expired capsule → expired', async () => {
    const bytes = signCapsule(await payload(11, {}, new Date(NOW.getTime() - 40 * DAY)), [k1]);
    await refuses(bytes, trust1, 'expired', /expired at/);
  });

  test('expiry is exclusive: refused exactly at expires_at', async () => {
    const p = await payload(11);
    await refuses(signCapsule(p, [k1]), trust1, 'expired', undefined, new Date(p.expires_at));
  });

  test('created far in the future → not_yet_valid', async () => {
    await refuses(signCapsule(await payload(11, {}, new Date(NOW.getTime() + DAY)), [k1]), trust1, 'not_yet_valid');
  });

  test('expired trust file → expired', async () => {
    await refuses(signCapsule(await payload(11), [k1]), trustOf([k1], 1, new Date(NOW.getTime() - 1000)), 'expired', /trust file expired/);
  });

  test('truncated file → malformed', async () => {
    const bytes = signCapsule(await payload(11), [k1]);
    await refuses(bytes.subarray(0, Math.floor(bytes.length / 2)), trust1, 'malformed', /not valid JSON/);
  });

  test('garbage bytes → malformed', async () => {
    await refuses(Buffer.from([0xff, 0x00, 0x13, 0x37, 0x42]), trust1, 'malformed');
    await refuses(Buffer.from('[1,2,3]'), trust1, 'malformed', /not a JSON object/);
    await refuses(
      Buffer.from(
        '{"payloadType":"application/vnd.lilith.capsule+json","payload":"!!!","signatures":[{"keyid":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","sig":"AAAA"}]}',
      ),
      trust1,
      'malformed',
      /base64/,
    );
  });

  test('oversized file → too_large, before any parsing', async () => {
    const huge = Buffer.alloc(MAX_CAPSULE_BYTES + 1, 0x7b); // "{{{{…": would be malformed if parsed
    await refuses(huge, trust1, 'too_large', /cap/);
  });

  test('signatures are checked before the payload is parsed: unsigned garbage payload → bad_signature, not malformed', async () => {
    const bytes = editEnvelope(signCapsule(await payload(11), [k1]), (env) => {
      env.payload = Buffer.from('{"format": "lilith.capsule/v1", "watermark": ').toString('base64');
    });
    await refuses(bytes, trust1, 'bad_signature');
  });

  test('valid signatures over a payload that is not a capsule → malformed (checked after the signature)', async () => {
    const bytes = signEnvelope(CAPSULE_PAYLOAD_TYPE, Buffer.from('{"format":"something-else"}'), [k1]);
    await refuses(bytes, trust1, 'malformed', /format/);
  });

  test('a trust envelope presented as a capsule → malformed payload type', async () => {
    const bytes = signEnvelope('application/vnd.lilith.trust+json', encodePayload(await payload(11)), [k1]);
    await refuses(bytes, trust1, 'malformed', /payloadType/);
  });
});

describe('acceptance state', () => {
  test('accepting records watermark and digest; the same capsule again is already accepted', async () => {
    const dir = await tempDir();
    try {
      const bytes = signCapsule(await payload(3), [k1]);
      const v = await acceptCapsule(bytes, trust1, dir.path, NOW);
      const s = await readState(dir.path);
      assert.deepEqual(s, { watermark: 3, digest: v.digest, accepted_at: NOW.toISOString() });
      const before = await readFile(join(dir.path, 'state.json'));
      const again = await acceptCapsule(bytes, trust1, dir.path, new Date(NOW.getTime() + 1000));
      assert.equal(again.alreadyAccepted, true);
      assert.deepEqual(await readFile(join(dir.path, 'state.json')), before);
      const next = await acceptCapsule(signCapsule(await payload(4), [k1]), trust1, dir.path, NOW);
      assert.equal((await readState(dir.path))?.watermark, 4);
      assert.equal(next.alreadyAccepted, false);
      // The atomic write leaves no temp files behind.
      assert.deepEqual(await readdir(dir.path), ['state.json']);
    } finally {
      await dir.remove();
    }
  });

  test('a corrupt state file is a state_corrupt error and is left as it was', async () => {
    const dir = await tempDir();
    try {
      const path = join(dir.path, 'state.json');
      for (const content of ['{"watermark": 3, "dig', '{"watermark": -1, "digest": "x", "accepted_at": "y"}', '']) {
        await writeFile(path, content);
        await assert.rejects(
          acceptCapsule(signCapsule(await payload(5), [k1]), trust1, dir.path, NOW),
          refusedWith('state_corrupt', /refusing to reset/),
        );
        assert.equal(await readFile(path, 'utf8'), content);
      }
    } finally {
      await dir.remove();
    }
  });

  test('no state file means nothing accepted yet', async () => {
    const dir = await tempDir();
    try {
      assert.equal(await readState(join(dir.path, 'missing')), null);
    } finally {
      await dir.remove();
    }
  });
});
