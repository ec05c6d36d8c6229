// Hot-swap under load: a steady stream of decisions runs against the Activator (the
// SnapshotSource the dataplane reads) while capsules with opposite policies are
// activated repeatedly. Every decision must match exactly the watermark of the
// snapshot it used, every multi-step request must see one snapshot throughout, and
// none may fail. The measured pauses are printed as test diagnostics.
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { parseTrust } from '../../capsule/index.js';
import { Activator } from '../../enforcer/control/activation.js';
import type { AuthzRequest } from '../../cedar/types.js';
import { generateSigningKey, makeCapsule, tempDir, writeTrust } from '../../testkit/control-plane.js';
import { readFile } from 'node:fs/promises';

const REQ: AuthzRequest = {
  principal: { type: 'Agent', id: 'spiffe://corp.example/agents/coder' },
  action: { type: 'Action', id: 'read_file' },
  resource: { type: 'MCPServer', id: 'files' },
  context: { taint: [], data_touched: 0, tool: 'read_file', arguments: { path: '/workspace/notes.txt' } },
};
// Even watermarks carry the bundled policies (read_file allowed); odd ones add a forbid-all.
const expected = (wm: number) => (wm % 2 === 0 ? 'allow' : 'deny');
const expectedReason = (wm: number) => (wm % 2 === 0 ? 'read-file-clean' : 'test-deny-all');

let dir: string;
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

it('swapping capsules under a steady decision stream: zero failed, zero mixed decisions', async (t) => {
  dir = await tempDir('cp-hotswap');
  const key = generateSigningKey();
  const trust = parseTrust(await readFile(await writeTrust(dir, [key])));
  const act = new Activator({ trust, stateDir: join(dir, 'state'), engine: 'wasm', log: () => undefined });
  const SWAPS = 20;
  const capsules = await Promise.all(
    Array.from({ length: SWAPS + 1 }, (_, i) => makeCapsule(key, i + 2, { variant: (i + 2) % 2 === 0 ? 'base' : 'deny-all' })),
  );
  assert.equal((await act.offer({ source: 'test', bytes: capsules[0], commit: null })).result, 'activated');

  let decisions = 0;
  let failures = 0;
  let mixed = 0;
  const seen = new Set<number>();
  let running = true;
  let lastTick = process.hrtime.bigint();
  const gaps: { at: bigint; gapUs: number }[] = [];

  // The client: each request reads the snapshot once, decides, yields (as a request
  // waiting for its body would), and decides again on the same snapshot.
  const client = (async () => {
    while (running) {
      const snap = act.get();
      if (!snap) {
        failures++;
        await new Promise((r) => setImmediate(r));
        continue;
      }
      try {
        const first = snap.authorizer.isAuthorized(REQ);
        await new Promise((r) => setImmediate(r));
        const second = snap.authorizer.isAuthorized(REQ);
        decisions += 2;
        seen.add(snap.watermark);
        for (const d of [first, second]) {
          if (d.decision !== expected(snap.watermark) || !d.reasons.includes(expectedReason(snap.watermark)) || d.errors.length) mixed++;
        }
      } catch {
        failures++;
      }
      const now = process.hrtime.bigint();
      gaps.push({ at: now, gapUs: Number(now - lastTick) / 1000 });
      lastTick = now;
    }
  })();

  // Warm-up (the engine's WebAssembly tiers up on first use), then the baseline: the
  // same stream with no swaps.
  await new Promise((r) => setTimeout(r, 1500));
  const baselineStart = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, 1500));
  const baselineEnd = process.hrtime.bigint();
  const swapPauses: number[] = [];
  const activationMs: number[] = [];
  for (let i = 1; i <= SWAPS; i++) {
    const t0 = performance.now();
    const r = await act.offer({ source: 'test', bytes: capsules[i], commit: null });
    activationMs.push(performance.now() - t0);
    assert.equal(r.result, 'activated', JSON.stringify(r));
    if (r.result === 'activated') swapPauses.push(r.swapPauseUs);
    await new Promise((r) => setTimeout(r, 50));
  }
  running = false;
  await client;
  act.stop();

  const base = gaps.filter((g) => g.at > baselineStart && g.at <= baselineEnd).map((g) => g.gapUs);
  const during = gaps.filter((g) => g.at > baselineEnd).map((g) => g.gapUs);
  t.diagnostic(`decisions: ${decisions}, failed: ${failures}, mixed: ${mixed}, watermarks seen: ${seen.size}/${SWAPS + 1}`);
  t.diagnostic(`reference swap: max ${Math.max(...swapPauses).toFixed(2)} µs, p50 ${percentile(swapPauses, 50).toFixed(2)} µs`);
  t.diagnostic(
    `activation (verify + build engine + persist + swap): p50 ${percentile(activationMs, 50).toFixed(1)} ms, max ${Math.max(...activationMs).toFixed(1)} ms`,
  );
  t.diagnostic(
    `gap between requests, baseline: p50 ${percentile(base, 50).toFixed(0)} µs, p99 ${percentile(base, 99).toFixed(0)} µs, max ${Math.max(...base).toFixed(0)} µs`,
  );
  t.diagnostic(
    `gap between requests, while swapping: p50 ${percentile(during, 50).toFixed(0)} µs, p99 ${percentile(during, 99).toFixed(0)} µs, max ${Math.max(...during).toFixed(0)} µs (the max is the engine compile on the event loop; verification and the cedar-wasm parse run in a worker; the swap is microseconds)`,
  );

  assert.equal(failures, 0);
  assert.equal(mixed, 0);
  assert.ok(decisions > 100, `only ${decisions} decisions`);
  assert.ok(seen.size >= SWAPS / 2, `the stream saw only ${seen.size} of ${SWAPS + 1} capsules`);
});

it('a request that started on a replaced snapshot finishes on it', async () => {
  dir ??= await tempDir('cp-hotswap');
  const key = generateSigningKey();
  const trust = parseTrust(await readFile(await writeTrust(join(dir), [key])));
  const act = new Activator({ trust, stateDir: join(dir, 'state2'), engine: 'wasm', log: () => undefined, disposeGraceMs: 2000 });
  await act.offer({ source: 'test', bytes: await makeCapsule(key, 2), commit: null });
  const held = act.get()!;
  await act.offer({ source: 'test', bytes: await makeCapsule(key, 3, { variant: 'deny-all' }), commit: null });
  assert.equal(act.get()!.watermark, 3);
  assert.equal(act.get()!.authorizer.isAuthorized(REQ).decision, 'deny');
  // Still inside the grace period: the old engine answers with its own policy.
  const d = held.authorizer.isAuthorized(REQ);
  assert.equal(d.decision, 'allow');
  assert.deepEqual(d.reasons, ['read-file-clean']);
  act.stop();
});
