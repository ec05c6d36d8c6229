// Module dependency resolution and tool checks on real artifacts: the 6.1 kernel's own 9p/virtio
// modules (cached by the runner; fetched with apt-get if missing) laid out as a lib/modules tree.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { debianKernel, resolveModules } from '../../vm-tests/kernels.js';
import { isStatic } from '../../vm-tests/tools.js';

const root = resolve(import.meta.dirname, '..', '..', '..');
const skipVm = process.env.LILITH_SKIP_VM === '1' ? 'LILITH_SKIP_VM=1: no Debian kernels on this runner' : false;

test('a dynamically linked binary and a non-ELF file are not static', () => {
  assert.equal(isStatic(process.execPath), false);
  assert.equal(isStatic(join(root, 'package.json')), false);
});

test('busybox-static is recognised as static', {
  skip: existsSync('/bin/busybox') ? false : 'busybox-static not installed (the VM runner installs it)',
}, () => {
  assert.equal(isStatic('/bin/busybox'), true);
});

test('9p modules resolve dependencies first, skip built-ins, read .ko.xz, and name what is missing', { skip: skipVm }, () => {
  const k = debianKernel('6.1', join(root, '.cache', 'vm', 'kernels'), () => {});
  const byName = new Map(k.modules.map((m) => [m.split('/').pop()!.replace(/\.ko$/, ''), m]));
  assert.ok(byName.has('9p') && byName.has('9pnet_virtio') && byName.has('virtio_pci'), [...byName.keys()].join(','));
  assert.ok(byName.has('veth'), `veth for the kernel-netns scenario: ${[...byName.keys()].join(',')}`);
  const order = [...byName.keys()];
  for (const [dep, user] of [
    ['9pnet', '9p'],
    ['9pnet', '9pnet_virtio'],
    ['virtio', 'virtio_pci'],
    ['netfs', '9p'],
  ]) {
    assert.ok(order.indexOf(dep) < order.indexOf(user), `${dep} loads before ${user}: ${order.join(',')}`);
  }

  const dir = mkdtempSync(join(tmpdir(), 'lilith-mods-'));
  try {
    const tree = join(dir, 'kernel', 'x');
    mkdirSync(tree, { recursive: true });
    for (const [name, file] of byName) copyFileSync(file, join(tree, `${name}.ko`));
    // One compressed module, as Debian ships them; one declared built in.
    execFileSync('xz', ['-z', join(tree, '9pnet.ko')]);
    writeFileSync(join(dir, 'modules.builtin'), 'kernel/drivers/virtio/virtio_pci.ko\n');
    const mods = resolveModules(dir, ['virtio_pci', '9pnet_virtio', '9p']);
    const names = mods.map((m) => m.name);
    assert.ok(!names.includes('virtio_pci'), 'built-in module skipped');
    assert.ok(names.indexOf('9pnet') < names.indexOf('9p'));
    const p9net = mods.find((m) => m.name === '9pnet')!;
    assert.deepEqual(p9net.data, readFileSync(byName.get('9pnet')!), '.ko.xz decompressed to the original bytes');

    // An optional root that is absent is left out; a required one is an error.
    assert.deepEqual(
      resolveModules(dir, ['9p', 'no_such_mod'], ['no_such_mod']).map((m) => m.name),
      resolveModules(dir, ['9p']).map((m) => m.name),
    );
    assert.throws(() => resolveModules(dir, ['no_such_mod']), /module no_such_mod/);
    rmSync(join(tree, 'netfs.ko'));
    assert.throws(() => resolveModules(dir, ['9p']), /module netfs \(needed by (\w+ <- )?9p\) not found under .* and not built in/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
