// lilith.json must fit the policies and entities it ships with. A forbid testing a
// taint label lilith.json does not define can never fire (context.taint only ever
// holds defined labels), and an agent registered in a group entities.json does not
// define escapes every policy scoped to the group it was meant to be in. Both pass
// strict Cedar validation and carry a valid signature; CI's `lilith validate` refuses
// them, and so must a real `lilith enforcer` (invalid_config, the active capsule
// stays) and `lilith verify`.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { signCapsule, type CapsulePayload } from '../../capsule/index.js';
import { createAuthorizer } from '../../cedar/index.js';
import { validateCapsule } from '../../enforcer/control/validate-capsule.js';
import {
  assertRefusedEverywhere,
  CapsuleBranch,
  type EnforcerProcess,
  makeCapsule,
  makePayload,
  UNTRUSTED_WRITE_REQUEST,
  withUntrustedNoWritesCondition,
} from '../../testkit/control-plane.js';

/** `untrusted-no-writes` tests "UNTRUSTD" (a typo): valid Cedar, but no request ever carries that label. */
const undefinedTaintLabel = (watermark: number) => withUntrustedNoWritesCondition(watermark, 'context.taint.contains("UNTRUSTD")');

/** The reader registered in group "reader" (entities.json defines "readers"): the readers' forbids miss it. */
async function undefinedGroup(watermark: number): Promise<CapsulePayload> {
  const p = await makePayload(watermark);
  const registrations = p.config.registrations.map((r) => (r.spiffe_id.endsWith('/agents/reader') ? { ...r, groups: ['reader'] } : r));
  assert.ok(
    registrations.some((r) => r.groups?.includes('reader')),
    'fixture: the reader was found',
  );
  return { ...p, config: { ...p.config, registrations } };
}

const cases: Array<[string, (wm: number) => Promise<CapsulePayload>, RegExp]> = [
  ['a forbid testing a taint label lilith.json does not define', undefinedTaintLabel, /untrusted-no-writes.*"UNTRUSTD"/],
  ['a registration in a group entities.json does not define', undefinedGroup, /registrations\/1\/groups\/0.*AgentGroup "reader"/],
];

const untrustedWrite = UNTRUSTED_WRITE_REQUEST;

it('the forbid on an undefined label really fails open when activated without the config checks', async () => {
  const good = createAuthorizer(await makePayload(1), 'wasm');
  const typo = createAuthorizer(await undefinedTaintLabel(1), 'wasm');
  try {
    assert.equal(good.isAuthorized(untrustedWrite).decision, 'deny');
    assert.equal(typo.isAuthorized(untrustedWrite).decision, 'allow');
  } finally {
    good.dispose();
    typo.dispose();
  }
});

it('both capsules pass strict Cedar validation and are refused only by the config checks', async () => {
  for (const [, make, reason] of cases) {
    const p = await make(1);
    assert.throws(
      () => validateCapsule(p),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, 'invalid_config', e.message);
        assert.match(e.message, reason);
        return true;
      },
    );
  }
  validateCapsule(await makePayload(1)); // the unchanged capsule passes
});

describe('lilith enforcer refuses signed capsules whose lilith.json does not fit (invalid_config)', () => {
  let branch: CapsuleBranch;
  let enf: EnforcerProcess;

  before(async () => {
    ({ branch, enf } = await CapsuleBranch.withActiveEnforcer('cp-config'));
  });

  after(async () => {
    await enf?.kill('SIGKILL');
    await branch?.dispose();
  });

  let wm = 1;
  for (const [what, make, reason] of cases) {
    it(`refuses ${what}; the active capsule stays and keeps deciding; lilith verify refuses it too`, async () => {
      await assertRefusedEverywhere(branch, enf, signCapsule(await make(++wm), [branch.key]), 'invalid_config', reason);
    });
  }

  it('a valid capsule after the refusals activates', async () => {
    await branch.pub.publish(await makeCapsule(branch.key, ++wm));
    await enf.waitFor((s) => s.active?.watermark === wm, `watermark ${wm} active`);
  });
});
