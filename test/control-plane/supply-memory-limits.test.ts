// The memory limit supply-bounds.test.ts measures against is the one both deployments
// ship: the DaemonSet's limits.memory and the systemd unit's MemoryMax must agree.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../../testkit/control-plane.js';

test('systemd MemoryMax matches the DaemonSet memory limit (512 MiB)', () => {
  const daemonset = readFileSync(join(REPO_ROOT, 'deploy/kubernetes/daemonset.yaml'), 'utf8');
  const unit = readFileSync(join(REPO_ROOT, 'deploy/systemd/lilith-enforcer.service'), 'utf8');
  const k8s = /limits:\s*\{\s*memory:\s*(\d+)Mi\s*\}/.exec(daemonset)?.[1];
  const systemd = /^MemoryMax=(\d+)M$/m.exec(unit)?.[1];
  assert.equal(k8s, '512');
  assert.equal(systemd, '512');
  const high = Number(/^MemoryHigh=(\d+)M$/m.exec(unit)?.[1]);
  assert.ok(high > 305 && high < 512, 'MemoryHigh sits above the measured peak and below the hard limit');
});
