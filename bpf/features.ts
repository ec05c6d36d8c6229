// Kernel feature detection for the BPF layer. BPF-LSM needs three things: the
// kernel accepts LSM programs (lockdown can refuse them), `bpf` is in the active
// LSM list (otherwise an attached program loads fine and enforces nothing), and
// the hook really fires — checked end to end like Tetragon does, with a probe.
import { existsSync, readFileSync, closeSync, openSync } from 'node:fs';
import { release } from 'node:os';
import { gunzipSync } from 'node:zlib';
import { BpfError } from './errors.js';
import { BpfObject, objectPath, type BpfLink } from './loader.js';
import { ensureSecurityfs } from './mounts.js';

export function kernelRelease(): string {
  return release();
}

/** Kernel BTF is what CO-RE relocates against. */
export function hasBtf(): boolean {
  return existsSync('/sys/kernel/btf/vmlinux');
}

/** Active LSMs in order, from securityfs `lsm` (mounted if needed). */
export function activeLsms(): string[] {
  const root = ensureSecurityfs();
  return readFileSync(`${root}/lsm`, 'utf8').trim().split(',').filter(Boolean);
}

export function bpfLsmActive(): boolean {
  return activeLsms().includes('bpf');
}

/** Lockdown mode (`none`, `integrity`, `confidentiality`), or null without the lockdown LSM. */
export function lockdownMode(): string | null {
  const root = ensureSecurityfs();
  try {
    const text = readFileSync(`${root}/lockdown`, 'utf8');
    return /\[(\w+)\]/.exec(text)?.[1] ?? null;
  } catch {
    return null;
  }
}

export interface LsmProbe {
  /** The kernel accepted and attached an LSM program. */
  readonly loadable: boolean;
  /** The attached program ran on a hook this process triggered. */
  readonly fires: boolean;
  /** Why not, when either is false. */
  readonly error?: string;
  /** errno code of the failing step (EPERM under lockdown), when one failed. */
  readonly code?: string;
}

/**
 * Loads bpf/build/lsm_probe.bpf.o (lsm/file_open counting this process's opens),
 * attaches it, opens a file and reads the counter back. Never throws for kernel
 * refusals: they are the answer. `objPath` overrides the object location.
 */
export function probeBpfLsm(objPath: string = objectPath('lsm_probe')): LsmProbe {
  let obj: BpfObject | undefined;
  let link: BpfLink | undefined;
  let stage = 'open';
  try {
    obj = BpfObject.open(objPath);
    stage = 'load';
    obj.load();
    stage = 'attach';
    link = obj.program('lsm_probe_open').attachLsm();
    const state = obj.map('probe_state');
    const key = (k: number): Buffer => Buffer.from(new Uint32Array([k]).buffer);
    const tgid = Buffer.alloc(8);
    tgid.writeBigUInt64LE(BigInt(process.pid));
    state.update(key(0), tgid);
    stage = 'trigger';
    // file_open runs for every open(2); the sync call runs on this (tgid) thread.
    closeSync(openSync('/proc/self/stat', 'r'));
    const hits = state.lookup(key(1))?.readBigUInt64LE(0) ?? 0n;
    if (hits > 0n) return { loadable: true, fires: true };
    return {
      loadable: true,
      fires: false,
      error: `LSM program attached but did not run (active LSMs: ${safeLsms()}; bpf must be in the list, boot with lsm=...,bpf)`,
    };
  } catch (e) {
    if (!(e instanceof BpfError)) throw e;
    const reason =
      stage === 'load' && e.code === 'EPERM' && lockdownMode() && lockdownMode() !== 'none'
        ? `${e.message}; kernel lockdown (${lockdownMode()}) refuses LSM programs`
        : e.message;
    return { loadable: stage === 'trigger', fires: false, error: reason, code: e.code };
  } finally {
    link?.destroy();
    obj?.close();
  }
}

function safeLsms(): string {
  try {
    return activeLsms().join(',');
  } catch {
    return 'unknown';
  }
}

// --- Static detection without loading anything: detectBpfLsm() reads the LSM
// list, BTF and CONFIG_BPF_LSM and explains what is off in one sentence (for logs
// and status), where probeBpfLsm() above is the end-to-end check.

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
    return readFileSync(file, 'utf8')
      .trim()
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
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
    const bootWith = [...lsmList.filter((l) => l !== 'capability'), 'bpf'].join(',');
    return {
      ...base,
      state: 'not-in-lsm-list',
      active: false,
      reason: `bpf is not in the active LSM list (${lsmList.join(',')}): BPF-LSM programs would attach and never run; boot with lsm=${bootWith}`,
    };
  }
  return {
    ...base,
    state: 'unknown',
    active: false,
    reason: `cannot read ${lsmFile} (is securityfs mounted?): BPF-LSM treated as inactive`,
  };
}
