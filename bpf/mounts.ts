// Makes sure the pseudo filesystems the BPF layer needs are mounted: cgroup v2
// (cgroup programs attach to its directories), bpffs (pins) and securityfs
// (the active LSM list). Reads /proc/self/mounts; mounts only what is missing.
import { mkdirSync, readFileSync } from 'node:fs';
import { native } from './addon.js';
import { BpfError } from './errors.js';

export interface MountEntry {
  readonly source: string;
  readonly target: string;
  readonly fstype: string;
  readonly options: string;
}

// /proc/self/mounts escapes space, tab, newline and backslash as octal.
const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

export function mounts(): MountEntry[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [source = '', target = '', fstype = '', options = ''] = line.split(' ');
      return { source: unescape(source), target: unescape(target), fstype, options };
    });
}

/** Mount points of a filesystem type, in mount order. */
export function mountPointsOf(fstype: string): string[] {
  return mounts()
    .filter((m) => m.fstype === fstype)
    .map((m) => m.target);
}

function ensure(fstype: string, defaultTarget: string, source: string): string {
  const existing = mountPointsOf(fstype);
  if (existing.includes(defaultTarget)) return defaultTarget;
  if (existing.length > 0) return existing[0]!;
  mkdirSync(defaultTarget, { recursive: true });
  const r = native().mount(source, defaultTarget, fstype);
  if (r < 0) throw new BpfError('mount', -r, { target: `${fstype} on ${defaultTarget}` });
  return defaultTarget;
}

/**
 * The cgroup v2 mount point: an existing one (prefers /sys/fs/cgroup when it is
 * cgroup2), else mounts cgroup2 at /sys/fs/cgroup/unified (hybrid hosts).
 */
export function ensureCgroup2(): string {
  const existing = mountPointsOf('cgroup2');
  if (existing.includes('/sys/fs/cgroup')) return '/sys/fs/cgroup';
  return ensure('cgroup2', '/sys/fs/cgroup/unified', 'none');
}

/** The bpffs mount point, /sys/fs/bpf unless bpffs is already mounted elsewhere. */
export function ensureBpffs(): string {
  return ensure('bpf', '/sys/fs/bpf', 'bpf');
}

/** The securityfs mount point (/sys/kernel/security). */
export function ensureSecurityfs(): string {
  return ensure('securityfs', '/sys/kernel/security', 'none');
}
