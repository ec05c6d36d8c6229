// Kernel feature detection for BPF-LSM. "LSM program attached but bpf not in the active LSM
// list" loads and attaches fine yet enforces nothing, so enforcement must never be assumed from a
// successful attach: read the LSM list first (tetragon pkg/bpf/detect_linux.go does the same),
// and confirm with a probe that the hook fires when a loader is available.
import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

export type BpfLsmState =
  /** bpf is in the active LSM list: BPF-LSM programs run. */
  | 'active'
  /** The kernel has BPF-LSM but was booted without bpf in `lsm=`: programs attach and never run. */
  | 'not-in-lsm-list'
  /** The kernel config says CONFIG_BPF_LSM is not set. */
  | 'not-built'
  /** securityfs is not readable: cannot tell. Treated as not active. */
  | 'unknown';

export interface BpfLsmStatus {
  readonly state: BpfLsmState;
  /** True only for `active`; anything else must not be relied on for enforcement. */
  readonly active: boolean;
  readonly lsmList: string[] | null;
  /** /sys/kernel/btf/vmlinux exists (CO-RE programs need it). */
  readonly btf: boolean;
  /** CONFIG_BPF_LSM from /proc/config.gz, or null when the config is not exposed. */
  readonly configBpfLsm: boolean | null;
  /** One sentence for logs and `lilith status`. */
  readonly reason: string;
}

export interface DetectOptions {
  readonly lsmFile?: string;
  readonly btfFile?: string;
  readonly configGz?: string;
}

export function readLsmList(file = '/sys/kernel/security/lsm'): string[] | null {
  try {
    return readFileSync(file, 'utf8').trim().split(',').map((s) => s.trim()).filter(Boolean);
  } catch {
    return null;
  }
}

function configBpfLsm(file: string): boolean | null {
  try {
    const text = gunzipSync(readFileSync(file)).toString('utf8');
    return /^CONFIG_BPF_LSM=y$/m.test(text);
  } catch {
    return null;
  }
}

export function detectBpfLsm(opts: DetectOptions = {}): BpfLsmStatus {
  const lsmFile = opts.lsmFile ?? '/sys/kernel/security/lsm';
  const lsmList = readLsmList(lsmFile);
  const btf = existsSync(opts.btfFile ?? '/sys/kernel/btf/vmlinux');
  const config = configBpfLsm(opts.configGz ?? '/proc/config.gz');
  const base = { lsmList, btf, configBpfLsm: config };
  if (lsmList?.includes('bpf')) {
    return { ...base, state: 'active', active: true, reason: `bpf is in the active LSM list (${lsmList.join(',')})` };
  }
  if (config === false) {
    return { ...base, state: 'not-built', active: false, reason: 'kernel built without CONFIG_BPF_LSM' };
  }
  if (lsmList) {
    return {
      ...base,
      state: 'not-in-lsm-list',
      active: false,
      reason: `bpf is not in the active LSM list (${lsmList.join(',')}): BPF-LSM programs would attach and never run; boot with lsm=${[...lsmList.filter((l) => l !== 'capability'), 'bpf'].join(',')}`,
    };
  }
  return { ...base, state: 'unknown', active: false, reason: `cannot read ${lsmFile} (is securityfs mounted?): BPF-LSM treated as inactive` };
}
