// Loads the native addon (bpf/addon/build/Release/lilith_bpf.node) once, on
// first use, and types its surface. Every function returns -errno on failure.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpfError } from './errors.js';
import { errnoValue } from './errors.js';

export interface NativeProgram {
  name: string;
  section: string;
  type: number;
  expectedAttachType: number;
  autoload: boolean;
}
export interface NativeMapDesc {
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  fd: number;
}
export interface NativeMapInfo {
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  id: number;
  flags: number;
}
export interface NativeProgInfo {
  name: string;
  type: number;
  id: number;
  /** The kernel's hash of the program's instructions (map references zeroed), hex. */
  tag: string;
}
export interface NativeLinkInfo {
  id: number;
  type: number;
  progId: number;
  cgroupId?: bigint;
  attachType?: number;
}
export interface NativeRingBuf {
  close(): void;
  ref(): void;
  unref(): void;
}

export interface Native {
  objectOpen(path: string, pinRoot?: string): number;
  objectLoad(h: number): number;
  objectClose(h: number): number;
  objectPrograms(h: number): NativeProgram[] | number;
  objectMaps(h: number): NativeMapDesc[] | number;
  objectSetGlobal(h: number, name: string, value: Buffer): number;
  programFd(h: number, name: string): number;
  programSetAutoload(h: number, name: string, on: boolean): number;
  programSetType(h: number, name: string, progType: number, expectedAttachType: number): number;
  programAttach(h: number, name: string): number;
  programAttachLsm(h: number, name: string): number;
  programAttachCgroup(h: number, name: string, cgroupDir: string): number;
  mapFdByName(h: number, name: string): number;
  mapSetMaxEntries(h: number, name: string, n: number): number;
  mapPinPath(h: number, name: string): string | null | number;
  linkOpenPinned(path: string): number;
  linkFd(l: number): number;
  linkPinPath(l: number): string | null | number;
  linkPin(l: number, path: string): number;
  linkUnpin(l: number): number;
  linkDetach(l: number): number;
  linkDestroy(l: number): number;
  objGet(path: string): number;
  objPin(fd: number, path: string): number;
  closeFd(fd: number): number;
  mapInfo(fd: number): NativeMapInfo | number;
  progInfo(fd: number): NativeProgInfo | number;
  progInfoById(id: number): NativeProgInfo | number;
  linkInfo(fd: number): NativeLinkInfo | number;
  mapLookup(fd: number, key: Buffer, valueLen: number): Buffer | number;
  mapUpdate(fd: number, key: Buffer, value: Buffer, flags: number): number;
  mapDelete(fd: number, key: Buffer): number;
  mapKeys(fd: number, keyLen: number, limit: number): Buffer[] | number;
  numPossibleCpus(): number;
  RingBuf: new (mapFd: number, onSample: (data: Buffer) => void) => NativeRingBuf;
  mount(source: string, target: string, fstype: string, flags?: number, data?: string): number;
  umount(target: string): number;
  monotonicNs(): bigint;
  lastLog(): string;
  sdNotify(socket: string, message: string): number;
}

const ADDON_REL = join('bpf', 'addon', 'build', 'Release', 'lilith_bpf.node');

/** The repository root: the nearest ancestor of this module holding bpf/addon (works from bpf/ and dist/bpf/). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'bpf', 'addon', 'binding.gyp'))) return dir;
    const up = dirname(dir);
    if (up === dir) return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
    dir = up;
  }
}

let cached: Native | undefined;

/** The addon, loaded on first use. `LILITH_BPF_ADDON` overrides its path. */
export function native(): Native {
  if (cached) return cached;
  const path = process.env.LILITH_BPF_ADDON ?? join(repoRoot(), ADDON_REL);
  if (!existsSync(path)) {
    throw new BpfError('addon.load', errnoValue('ENOENT'), {
      target: path,
      detail: 'libbpf addon not built (run `bash scripts/build.sh`)',
    });
  }
  const require = createRequire(import.meta.url);
  cached = require(path) as Native;
  return cached;
}
