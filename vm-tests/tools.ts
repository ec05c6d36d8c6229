// Host tools the harness needs; installed with apt-get when missing and running as root.
import { existsSync, readFileSync } from 'node:fs';
import { run, which } from './exec.js';

interface Tool {
  readonly check: () => boolean;
  readonly pkg: string;
  readonly what: string;
}

const TOOLS: Tool[] = [
  { check: () => which('qemu-system-x86_64') !== null, pkg: 'qemu-system-x86', what: 'qemu-system-x86_64' },
  { check: () => existsSync('/bin/busybox') && isStatic('/bin/busybox'), pkg: 'busybox-static', what: 'static /bin/busybox' },
  { check: () => which('cpio') !== null, pkg: 'cpio', what: 'cpio' },
  { check: () => which('xz') !== null, pkg: 'xz-utils', what: 'xz' },
];

/** True when the ELF64 file has no PT_INTERP header, i.e. needs no dynamic loader (no libc in the initramfs). */
export function isStatic(path: string): boolean {
  try {
    const elf = readFileSync(path);
    if (elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2) return false;
    const phoff = Number(elf.readBigUInt64LE(0x20));
    const phentsize = elf.readUInt16LE(0x36);
    const phnum = elf.readUInt16LE(0x38);
    for (let i = 0; i < phnum; i++) if (elf.readUInt32LE(phoff + i * phentsize) === 3) return false;
    return true;
  } catch {
    return false;
  }
}

let aptUpdated = false;

export function aptUpdate(log: (m: string) => void): void {
  if (aptUpdated) return;
  log('apt-get update');
  run('apt-get', ['update', '-qq'], { timeoutMs: 300_000 });
  aptUpdated = true;
}

export function ensureTools(log: (m: string) => void): void {
  const missing = TOOLS.filter((t) => !t.check());
  if (!missing.length) return;
  const pkgs = missing.map((t) => t.pkg);
  if (process.getuid?.() !== 0) {
    throw new Error(`missing ${missing.map((t) => t.what).join(', ')}; install as root: apt-get install ${pkgs.join(' ')}`);
  }
  aptUpdate(log);
  log(`apt-get install ${pkgs.join(' ')}`);
  run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...pkgs], { timeoutMs: 600_000 });
  const still = missing.filter((t) => !t.check());
  if (still.length) throw new Error(`still missing after install: ${still.map((t) => t.what).join(', ')}`);
}
