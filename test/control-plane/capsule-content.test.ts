// A signature says who built a capsule, not that Cedar evaluates it as written. A
// forbid with a misspelt context attribute raises an error at evaluation, Cedar
// skips it, and the capsule fails open; entities of undeclared types are read by
// policies the validator never checked against them. A real `lilith enforcer`
// following a real git branch refuses both (invalid_policies / invalid_entities)
// and keeps the active capsule; `lilith verify` refuses the same bytes.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
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
  runCli,
  UNTRUSTED_WRITE_REQUEST,
  withUntrustedNoWritesCondition,
} from '../../testkit/control-plane.js';

/** The bundled set with `untrusted-no-writes` testing `context.taints` (a typo) instead of `context.taint`. */
const misspeltForbid = (watermark: number) => withUntrustedNoWritesCondition(watermark, 'context.taints.contains("UNTRUSTED")');

async function undeclaredEntity(watermark: number): Promise<CapsulePayload> {
  const p = await makePayload(watermark);
  return { ...p, entities: [...p.entities, { uid: { type: 'Bucket', id: 'exports' }, attrs: {}, parents: [] }] };
}

const untrustedWrite = UNTRUSTED_WRITE_REQUEST;

it('the misspelt forbid really fails open when activated without strict validation', async () => {
  const good = createAuthorizer(await makePayload(1), 'wasm');
  const typo = createAuthorizer(await misspeltForbid(1), 'wasm');
  try {
    assert.equal(good.isAuthorized(untrustedWrite).decision, 'deny');
    const d = typo.isAuthorized(untrustedWrite);
    assert.equal(d.decision, 'allow', 'Cedar skips the erroring forbid');
    assert.ok(
      d.errors.some((e) => e.startsWith('untrusted-no-writes')),
      JSON.stringify(d),
    );
  } finally {
    good.dispose();
    typo.dispose();
  }
  const typoPayload = await misspeltForbid(1);
  assert.throws(
    () => validateCapsule(typoPayload),
    (e: Error & { code?: string }) => {
      assert.equal(e.code, 'invalid_policies');
      assert.match(e.message, /untrusted-no-writes/);
      assert.match(e.message, /taints/);
      return true;
    },
  );
});

describe('lilith enforcer refuses signed capsules whose content is invalid', () => {
  let branch: CapsuleBranch;
  let enf: EnforcerProcess;

  before(async () => {
    ({ branch, enf } = await CapsuleBranch.withActiveEnforcer('cp-content'));
  });

  after(async () => {
    await enf?.kill('SIGKILL');
    await branch?.dispose();
  });

  const cases: Array<[string, 'invalid_policies' | 'invalid_entities', (wm: number) => Promise<CapsulePayload>, RegExp]> = [
    ['a misspelt context attribute inside a forbid', 'invalid_policies', misspeltForbid, /untrusted-no-writes.*taints/],
    ['an entity of a type the schema does not declare', 'invalid_entities', undeclaredEntity, /Bucket/],
  ];
  let wm = 1;
  for (const [what, code, make, reason] of cases) {
    it(`refuses ${what} (${code}); the active capsule stays and keeps deciding; lilith verify refuses it too`, async () => {
      await assertRefusedEverywhere(branch, enf, signCapsule(await make(++wm), [branch.key]), code, reason);
    });
  }

  it('a valid capsule after the refusals activates, and lilith verify accepts it', async () => {
    const bytes = await makeCapsule(branch.key, ++wm);
    await branch.pub.publish(bytes);
    await enf.waitFor((s) => s.active?.watermark === wm, `watermark ${wm} active`);
    const file = join(branch.dir, 'capsule-ok.json');
    await writeFile(file, bytes);
    const r = await runCli(['verify', file, '--trust', branch.trust]);
    assert.match(r.stdout, /^valid: /);
  });
});
