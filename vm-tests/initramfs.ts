// Builds the initramfs (newc cpio, gzip): static busybox, vm-tests/init.sh as /init, and the
// kernel's 9p/virtio modules with their load order.
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from './exec.js';
import type { KernelArtifacts } from './kernels.js';

/** init.sh is plain text next to the sources; dist/ has no copy, so read it from the source tree. */
const initScript = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'vm-tests', 'init.sh');

export function buildInitramfs(kernel: KernelArtifacts, workDir: string): string {
  const root = join(workDir, 'initramfs');
  mkdirSync(join(root, 'bin'), { recursive: true });
  mkdirSync(join(root, 'modules'), { recursive: true });
  mkdirSync(join(root, 'dev'), { recursive: true });
  copyFileSync('/bin/busybox', join(root, 'bin', 'busybox'));
  chmodSync(join(root, 'bin', 'busybox'), 0o755);
  writeFileSync(join(root, 'init'), readFileSync(initScript));
  chmodSync(join(root, 'init'), 0o755);
  for (const m of kernel.modules) copyFileSync(m, join(root, 'modules', basename(m)));
  writeFileSync(join(root, 'modules.load'), kernel.modules.map((m) => basename(m)).join('\n') + '\n');
  writeFileSync(join(root, 'modules.note'), `${kernel.modulesNote}\n`);
  const out = join(workDir, 'initramfs.cpio.gz');
  run('sh', ['-c', 'cd "$1" && find . | cpio -o -H newc --quiet -R 0:0 | gzip -1 > "$2"', 'mkinitramfs', root, out]);
  return out;
}
