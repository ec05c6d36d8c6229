// The verification worker also parses a verified capsule's policies and schema
// (the cedar-wasm part of an engine build), so the activation's build on the
// event loop is only the compile; a policy set that does not parse comes back
// verified but unprepared, and the activation's own build reports why.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateSigningKey, signCapsule, trustFromKeys } from '../../capsule/index.js';
import { parseTrustValue } from '../../capsule/trust.js';
import { splitPolicies } from '../../cedar/policy-set.js';
import { createAuthorizer } from '../../cedar/index.js';
import { bundleOf } from '../../capsule/index.js';
import { VerifyWorker } from '../../enforcer/control/verify-worker.js';
import { makePayload } from '../../testkit/control-plane.js';

test('a verified capsule comes back with its policies and schema already parsed; the engine built from them decides like one built from text', async () => {
  const key = generateSigningKey();
  const trust = parseTrustValue(trustFromKeys([key], 1));
  const payload = await makePayload(3);
  const worker = new VerifyWorker();
  try {
    const v = await worker.verify(signCapsule(payload, [key]), trust, null, new Date());
    assert.ok(v.prepared, 'prepared on the worker');
    assert.deepEqual(
      v.prepared.policies.map((p) => p.id),
      splitPolicies(payload.policies).map((p) => p.id),
    );
    assert.equal((v.prepared.schemaJson as { type: string }).type, 'success');
    const fromWorker = createAuthorizer({ ...bundleOf(v.payload), prepared: v.prepared }, 'fast');
    const fromText = createAuthorizer(bundleOf(payload), 'fast');
    const req = (tool: string, labels: string[], mask: number) => ({
      principal: { type: 'Agent', id: 'spiffe://corp.example/agents/coder' },
      action: { type: 'Action', id: tool },
      resource: { type: 'MCPServer', id: 'files' },
      context: { tool, arguments: { path: '/workspace/a' }, taint: labels, data_touched: mask },
      entities: [
        { uid: { type: 'Agent', id: 'spiffe://corp.example/agents/coder' }, attrs: {}, parents: [{ type: 'AgentGroup', id: 'coding' }] },
      ],
    });
    for (const r of [req('read_file', [], 0), req('http_post', [], 0), req('http_post', ['PII'], 1)])
      assert.deepEqual(fromWorker.isAuthorized(r), fromText.isAuthorized(r));
    assert.equal(fromWorker.isAuthorized(req('read_file', [], 0)).decision, 'allow');
    assert.equal(fromWorker.isAuthorized(req('http_post', ['PII'], 1)).decision, 'deny');
    fromWorker.dispose();
    fromText.dispose();

    // Signed but unparsable policies: verified, not prepared; the build itself then fails with cedar's reason.
    const broken = { ...payload, watermark: 4, policies: { ...payload.policies, 'zz.cedar': 'permit (principal, action, resource' } };
    const vb = await worker.verify(signCapsule(broken, [key]), trust, null, new Date());
    assert.equal(vb.prepared, undefined);
    assert.throws(() => createAuthorizer(bundleOf(vb.payload), 'fast'), /zz\.cedar/);
  } finally {
    await worker.close();
  }
});

test('a worker that misses its deadline is replaced by the caller thread: the capsule still verifies, a tampered one is still refused', async () => {
  const key = generateSigningKey();
  const trust = parseTrustValue(trustFromKeys([key], 1));
  const payload = await makePayload(3);
  // 1 ms: the worker cannot even start in time, so the deadline path is what runs.
  const worker = new VerifyWorker({ deadlineMs: 1 });
  try {
    const v = await worker.verify(signCapsule(payload, [key]), trust, null, new Date());
    assert.equal(v.payload.watermark, 3);
    const tampered = Buffer.from(signCapsule({ ...payload, watermark: 4 }, [key]));
    tampered[tampered.indexOf('"payload"') + 20] ^= 1;
    await assert.rejects(worker.verify(tampered, trust, null, new Date()), (e: unknown) => (e as { code?: string }).code !== undefined);
  } finally {
    await worker.close();
  }
});
