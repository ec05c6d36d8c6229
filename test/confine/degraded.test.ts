// The no-silent-downgrade decision, for kernels this host is not: given ABI
// numbers and seccomp support, which layers are missing and which refuse.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decideDegraded, missingLayers } from '../../confine/degraded.js';

const layers = (abi: number, seccomp = true) => missingLayers({ landlockAbi: abi, seccomp }).map((m) => m.layer);

test('missing layers by Landlock ABI and seccomp support', () => {
  assert.deepEqual(layers(7), []);
  assert.deepEqual(layers(6), []);
  assert.deepEqual(layers(5), ['landlock-scope']);
  assert.deepEqual(layers(4), ['landlock-ioctl-dev', 'landlock-scope']);
  assert.deepEqual(layers(3), ['landlock-net', 'landlock-ioctl-dev', 'landlock-scope']);
  assert.deepEqual(layers(2), ['landlock-truncate', 'landlock-net', 'landlock-ioctl-dev', 'landlock-scope']);
  // No Landlock at all is one layer: allowing a sub-feature does not allow running without Landlock.
  assert.deepEqual(layers(0), ['landlock']);
  assert.deepEqual(layers(7, false), ['seccomp']);
  assert.deepEqual(layers(0, false), ['landlock', 'seccomp']);
});

test('a missing layer refuses unless allow_degraded lists it', () => {
  const missing = missingLayers({ landlockAbi: 3, seccomp: true });
  const none = decideDegraded(missing);
  assert.deepEqual(
    none.refused.map((m) => m.layer),
    ['landlock-net', 'landlock-ioctl-dev', 'landlock-scope'],
  );
  assert.deepEqual(none.degraded, []);
  const some = decideDegraded(missing, ['landlock-scope', 'landlock-ioctl-dev']);
  assert.deepEqual(
    some.refused.map((m) => m.layer),
    ['landlock-net'],
  );
  assert.deepEqual(
    some.degraded.map((m) => m.layer),
    ['landlock-ioctl-dev', 'landlock-scope'],
  );
  const noLandlock = decideDegraded(missingLayers({ landlockAbi: 0, seccomp: true }), ['landlock-scope', 'landlock-net']);
  assert.deepEqual(
    noLandlock.refused.map((m) => m.layer),
    ['landlock'],
  );
  assert.deepEqual(decideDegraded(missingLayers({ landlockAbi: 7, seccomp: true }), []), { refused: [], degraded: [] });
  // Every reason names the ABI that lacks it.
  assert.match(missing.find((m) => m.layer === 'landlock-net')!.why, /ABI 3 < 4/);
});
