// Typed wrapper over the libbpf addon: objects, programs, links, maps, ring
// buffers, pins. Every failure is a BpfError {operation, errno, code, log?}.
// The native layer only returns -errno; all meaning lives here.
import { readlinkSync, unlinkSync as unlinkPin } from 'node:fs';
import { join } from 'node:path';
import { native, repoRoot, type NativeRingBuf } from './addon.js';
import { BpfError, check, errnoValue } from './errors.js';

export { BpfError } from './errors.js';

/** Kernel map types used by the loader (enum bpf_map_type). */
export const MapType = {
  HASH: 1,
  ARRAY: 2,
  PERCPU_HASH: 5,
  PERCPU_ARRAY: 6,
  LRU_HASH: 9,
  LRU_PERCPU_HASH: 10,
  HASH_OF_MAPS: 13,
  ARRAY_OF_MAPS: 12,
  SK_STORAGE: 24,
  RINGBUF: 27,
  INODE_STORAGE: 28,
  TASK_STORAGE: 29,
} as const;

const PERCPU = new Set<number>([MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH, 21 /* PERCPU_CGROUP_STORAGE */]);

const UPDATE_FLAGS = { any: 0, noexist: 1, exist: 2 } as const;
export type UpdateFlag = keyof typeof UPDATE_FLAGS;

const lastLog = (): string => native().lastLog();

/** What an fd is, from its /proc link: `bpf-map`, `bpf-prog`, `bpf-link`, or the raw target. */
function fdKind(fd: number): string {
  try {
    const target = readlinkSync(`/proc/self/fd/${fd}`);
    return target.startsWith('anon_inode:') ? target.slice('anon_inode:'.length) : target;
  } catch {
    return 'closed';
  }
}

/** Path of a compiled BPF object: `<repo>/bpf/build/<name>.bpf.o`. */
export function objectPath(name: string): string {
  return join(repoRoot(), 'bpf', 'build', `${name}.bpf.o`);
}

/** CLOCK_MONOTONIC in nanoseconds: the clock bpf_ktime_get_ns() reads. */
export function monotonicNs(): bigint {
  return native().monotonicNs();
}

/** Number of possible CPUs: a per-CPU map value holds one 8-byte-aligned slot per CPU. */
let cpus = 0;
export function possibleCpus(): number {
  if (cpus === 0) cpus = check('possibleCpus', native().numPossibleCpus());
  return cpus;
}

export interface OpenOptions {
  /** pin_root_path for maps declared with LIBBPF_PIN_BY_NAME; existing pins are reused on load. */
  readonly pinRoot?: string;
}

export class BpfObject {
  readonly path: string;
  #handle: number;
  #loaded = false;

  private constructor(path: string, handle: number) {
    this.path = path;
    this.#handle = handle;
  }

  /** bpf_object__open_file: parses the ELF and prepares CO-RE; nothing reaches the kernel yet. */
  static open(path: string, opts: OpenOptions = {}): BpfObject {
    const n = native();
    const h = check<number>('object.open', n.objectOpen(path, opts.pinRoot), path, lastLog);
    return new BpfObject(path, h);
  }

  /** @internal handle for programs and maps of this object; throws EBADF after close(). */
  get handle(): number {
    if (this.#handle === 0) throw new BpfError('object', errnoValue('EBADF'), { target: this.path, detail: 'object is closed' });
    return this.#handle;
  }

  get loaded(): boolean {
    return this.#loaded;
  }

  /** bpf_object__load: creates (or reuses pinned) maps, relocates and verifies programs. */
  load(): void {
    const ret = native().objectLoad(this.handle);
    if (ret < 0) throw new BpfError('object.load', -ret, { target: this.path, log: lastLog() });
    this.#loaded = true;
  }

  /** A program by its C function name. */
  program(name: string): BpfProgram {
    const p = this.#programs().find((x) => x.name === name);
    if (!p) throw new BpfError('object.program', errnoValue('ENOENT'), { target: `${this.path}:${name}`, detail: 'no such program' });
    return new BpfProgram(this, p.name, p.section, p.type, p.expectedAttachType);
  }

  programs(): BpfProgram[] {
    return this.#programs().map((p) => new BpfProgram(this, p.name, p.section, p.type, p.expectedAttachType));
  }

  /** A map by name (as in the C source; internal maps are `<obj>.bss`, `.data`, `.rodata`). */
  map(name: string): BpfMap {
    const maps = check('object.maps', native().objectMaps(this.handle), this.path);
    const m = maps.find((x) => x.name === name);
    if (!m) throw new BpfError('object.map', errnoValue('ENOENT'), { target: `${this.path}:${name}`, detail: 'no such map' });
    return BpfMap.fromObject(this, m.name, m);
  }

  maps(): BpfMap[] {
    const maps = check('object.maps', native().objectMaps(this.handle), this.path);
    return maps.map((m) => BpfMap.fromObject(this, m.name, m));
  }

  /**
   * Sets a global variable (`const volatile` in .rodata, or .data/.bss) before load().
   * The buffer must have the variable's exact size.
   */
  setGlobal(name: string, value: Buffer): void {
    if (this.#loaded) throw new BpfError('object.setGlobal', errnoValue('EBUSY'), { target: name, detail: 'object already loaded' });
    check('object.setGlobal', native().objectSetGlobal(this.handle, name, value), `${this.path}:${name}`);
  }

  /** bpf_object__close: frees programs and map fds. Pinned links and maps stay in the kernel. Idempotent. */
  close(): void {
    if (this.#handle === 0) return;
    native().objectClose(this.#handle);
    this.#handle = 0;
  }

  #programs() {
    return check('object.programs', native().objectPrograms(this.handle), this.path);
  }
}

export class BpfProgram {
  readonly object: BpfObject;
  readonly name: string;
  readonly section: string;
  /** enum bpf_prog_type */
  type: number;
  /** enum bpf_attach_type the section implies (or setType set) */
  expectedAttachType: number;

  /** @internal */
  constructor(object: BpfObject, name: string, section: string, type: number, expectedAttachType: number) {
    this.object = object;
    this.name = name;
    this.section = section;
    this.type = type;
    this.expectedAttachType = expectedAttachType;
  }

  /** The program fd (after load). */
  get fd(): number {
    return check<number>('program.fd', native().programFd(this.object.handle, this.name), this.name);
  }

  /** Kernel view of the loaded program: its id and tag (the hash of its instructions). */
  info(): ProgInfo {
    const i = check('program.info', native().progInfo(this.fd), this.name);
    return { id: i.id, name: i.name, tag: i.tag };
  }

  /** bpf_program__attach: auto-attach from the SEC name (LSM, tracing, ...). */
  attach(): BpfLink {
    return this.#link('program.attach', native().programAttach(this.object.handle, this.name));
  }

  attachLsm(): BpfLink {
    return this.#link('program.attachLsm', native().programAttachLsm(this.object.handle, this.name));
  }

  /**
   * Attaches to a cgroup v2 directory with a BPF link; the attach type comes from
   * SEC (cgroup/connect4, connect6, sendmsg4/6, recvmsg4/6, getpeername4/6,
   * sock_create, sockops, ...).
   */
  attachCgroup(cgroupPath: string): BpfLink {
    return this.#link('program.attachCgroup', native().programAttachCgroup(this.object.handle, this.name, cgroupPath), cgroupPath);
  }

  /**
   * Before load: sets the program type and expected attach type by number,
   * for sections the linked libbpf does not know (e.g. cgroup/connect_unix).
   */
  setType(progType: number, expectedAttachType: number): void {
    if (this.object.loaded)
      throw new BpfError('program.setType', errnoValue('EBUSY'), { target: this.name, detail: 'object already loaded' });
    check('program.setType', native().programSetType(this.object.handle, this.name, progType, expectedAttachType), this.name);
    this.type = progType;
    this.expectedAttachType = expectedAttachType;
  }

  /** Before load: false skips loading this program (e.g. LSM programs in cgroup-only mode). */
  setAutoload(on: boolean): void {
    if (this.object.loaded)
      throw new BpfError('program.setAutoload', errnoValue('EBUSY'), { target: this.name, detail: 'object already loaded' });
    check('program.setAutoload', native().programSetAutoload(this.object.handle, this.name, on), this.name);
  }

  #link(op: string, ret: number, where?: string): BpfLink {
    const target = where ? `${this.name} → ${where}` : this.name;
    if (ret < 0) throw new BpfError(op, -ret, { target, log: lastLog() });
    return new BpfLink(ret);
  }
}

export interface LinkInfo {
  readonly id: number;
  /** enum bpf_link_type (3 = cgroup) */
  readonly type: number;
  readonly progId: number;
  readonly cgroupId?: bigint;
  readonly attachType?: number;
}

export interface ProgInfo {
  readonly id: number;
  /** The kernel's name for it (truncated to 15 characters). */
  readonly name: string;
  /** The kernel's hash of the instructions, map references zeroed: same object, same kernel, same tag. */
  readonly tag: string;
}

export class BpfLink {
  #handle: number;

  /** @internal */
  constructor(handle: number) {
    this.#handle = handle;
  }

  /** bpf_link__open: re-adopts a link pinned in bpffs (e.g. by a previous daemon). */
  static openPinned(path: string): BpfLink {
    return new BpfLink(check<number>('link.openPinned', native().linkOpenPinned(path), path, lastLog));
  }

  get #h(): number {
    if (this.#handle === 0) throw new BpfError('link', errnoValue('EBADF'), { detail: 'link is destroyed' });
    return this.#handle;
  }

  get fd(): number {
    return check<number>('link.fd', native().linkFd(this.#h));
  }

  /** Where this link is pinned, if it is (set by pin() or openPinned()). */
  get pinPath(): string | null {
    return check<string | null>('link.pinPath', native().linkPinPath(this.#h));
  }

  /** Kernel view of the link (ids, and the cgroup id for cgroup links). */
  info(): LinkInfo {
    return check('link.info', native().linkInfo(this.fd));
  }

  /** The program this link runs, as the kernel describes it. */
  programInfo(): ProgInfo {
    const progId = this.info().progId;
    const i = check('link.programInfo', native().progInfoById(progId), `program ${progId}`);
    return { id: i.id, name: i.name, tag: i.tag };
  }

  /** Pins the link in bpffs: it stays attached after every fd is closed and this process exits. */
  pin(path: string): void {
    check('link.pin', native().linkPin(this.#h, path), path, lastLog);
  }

  /** Removes the pin (the link then lives as long as its fds). */
  unpin(): void {
    check('link.unpin', native().linkUnpin(this.#h), this.pinPath ?? undefined, lastLog);
  }

  /**
   * Detaches the program now, even if the link is pinned (BPF_LINK_DETACH). The
   * handle stays valid until destroy(). Kernels without detach for a link type
   * answer EOPNOTSUPP — LSM/tracing links on 6.1 do: there the attachment ends
   * when the pin is removed (unpin(), or unlink by path) and every fd is closed.
   */
  detach(): void {
    check('link.detach', native().linkDetach(this.#h), this.pinPath ?? undefined, lastLog);
  }

  /** Closes our fd. A pinned link stays attached; an unpinned one detaches. Idempotent. */
  destroy(): void {
    if (this.#handle === 0) return;
    native().linkDestroy(this.#handle);
    this.#handle = 0;
  }
}

interface MapShape {
  readonly name: string;
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
}

export class BpfMap {
  readonly name: string;
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  #object?: BpfObject;
  #fd: number;

  private constructor(shape: MapShape, fd: number, object?: BpfObject) {
    this.name = shape.name;
    this.type = shape.type;
    this.keySize = shape.keySize;
    this.valueSize = shape.valueSize;
    this.maxEntries = shape.maxEntries;
    this.#fd = fd;
    this.#object = object;
  }

  /** @internal a map of an open object; its fd is owned by the object (valid after load). */
  static fromObject(object: BpfObject, name: string, shape: MapShape): BpfMap {
    return new BpfMap({ ...shape, name }, -1, object);
  }

  /** bpf_obj_get + map info: opens a map pinned in bpffs. Close it with close(). */
  static openPinned(path: string): BpfMap {
    const n = native();
    const fd = check<number>('map.openPinned', n.objGet(path), path);
    // A pinned program or link opens too, and info-by-fd would describe it as
    // something else: check the fd's kind first.
    const kind = fdKind(fd);
    const info = kind === 'bpf-map' ? n.mapInfo(fd) : -errnoValue('EINVAL');
    if (typeof info === 'number') {
      n.closeFd(fd);
      throw new BpfError('map.openPinned', -info, { target: path, detail: `not a BPF map (${kind})` });
    }
    return new BpfMap(info, fd);
  }

  /** Wraps a map fd this process already owns (e.g. from another loader); closes it on close(). */
  static fromFd(fd: number): BpfMap {
    const kind = fdKind(fd);
    if (kind !== 'bpf-map')
      throw new BpfError('map.fromFd', errnoValue('EINVAL'), { target: `fd ${fd}`, detail: `not a BPF map (${kind})` });
    return new BpfMap(check('map.fromFd', native().mapInfo(fd)), fd);
  }

  get fd(): number {
    if (this.#object) {
      // `handle` throws EBADF once the object is closed, so a cached fd is never stale.
      const h = this.#object.handle;
      if (!this.#object.loaded) throw new BpfError('map.fd', errnoValue('EBADF'), { target: this.name, detail: 'object not loaded' });
      if (this.#fd < 0) this.#fd = check<number>('map.fd', native().mapFdByName(h, this.name), this.name);
      return this.#fd;
    }
    if (this.#fd < 0) throw new BpfError('map.fd', errnoValue('EBADF'), { target: this.name, detail: 'map is closed' });
    return this.#fd;
  }

  /** Kernel id and flags of the map. */
  info(): { id: number; flags: number } {
    const i = check('map.info', native().mapInfo(this.fd), this.name);
    return { id: i.id, flags: i.flags };
  }

  /** Bytes a lookup returns: valueSize, or one 8-byte-aligned slot per possible CPU for per-CPU maps. */
  get valueLength(): number {
    if (PERCPU.has(this.type)) return Math.ceil(this.valueSize / 8) * 8 * possibleCpus();
    return this.valueSize;
  }

  /** The value for `key`, or null when absent. */
  lookup(key: Buffer): Buffer | null {
    this.#checkKey('map.lookup', key);
    const r = native().mapLookup(this.fd, key, this.valueLength);
    if (typeof r === 'number') {
      if (r === -errnoValue('ENOENT')) return null;
      throw new BpfError('map.lookup', -r, { target: this.name });
    }
    return r;
  }

  update(key: Buffer, value: Buffer, flags: UpdateFlag = 'any'): void {
    this.#checkKey('map.update', key);
    if (value.length !== this.valueLength) {
      throw new BpfError('map.update', errnoValue('EINVAL'), {
        target: this.name,
        detail: `value is ${value.length} bytes, map expects ${this.valueLength}`,
      });
    }
    if (!(flags in UPDATE_FLAGS)) throw new TypeError(`map.update: unknown flag ${String(flags)}`);
    check('map.update', native().mapUpdate(this.fd, key, value, UPDATE_FLAGS[flags]), this.name);
  }

  /** Deletes `key`; false when it was absent. */
  delete(key: Buffer): boolean {
    this.#checkKey('map.delete', key);
    const r = native().mapDelete(this.fd, key);
    if (r === -errnoValue('ENOENT')) return false;
    check('map.delete', r, this.name);
    return true;
  }

  /** Every key (bpf_map_get_next_key walk, bounded by 2 × maxEntries against concurrent churn). */
  keys(): Buffer[] {
    return check('map.keys', native().mapKeys(this.fd, this.keySize, Math.max(1, this.maxEntries * 2)), this.name);
  }

  /** Every [key, value] pair; entries deleted during the walk are skipped. */
  entries(): Array<[Buffer, Buffer]> {
    const out: Array<[Buffer, Buffer]> = [];
    for (const k of this.keys()) {
      const v = this.lookup(k);
      if (v) out.push([k, v]);
    }
    return out;
  }

  pin(path: string): void {
    check('map.pin', native().objPin(this.fd, path), path);
  }

  /** Removes a pin (the map lives on while programs or fds reference it). */
  unpin(path: string): void {
    try {
      // Unlinking a bpffs entry only drops the pin's reference.
      unlinkPin(path);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new BpfError('map.unpin', errnoValue(err.code ?? 'EIO'), { target: path });
    }
  }

  /** Closes the fd of a map opened with openPinned/fromFd; no-op for object maps. Idempotent. */
  close(): void {
    if (this.#object || this.#fd < 0) return;
    native().closeFd(this.#fd);
    this.#fd = -1;
  }

  #checkKey(op: string, key: Buffer): void {
    if (!Buffer.isBuffer(key)) throw new TypeError(`${op}: key must be a Buffer`);
    if (key.length !== this.keySize) {
      throw new BpfError(op, errnoValue('EINVAL'), {
        target: this.name,
        detail: `key is ${key.length} bytes, map expects ${this.keySize}`,
      });
    }
  }
}

export interface RingBufferOptions {
  /** false: do not keep the event loop alive while open (default true). */
  readonly ref?: boolean;
  /**
   * Called when onSample throws. Default: process.emitWarning. A throwing
   * handler must not take a daemon down with an uncaught exception.
   */
  readonly onError?: (err: unknown, sample: Buffer) => void;
}

/**
 * Consumes a BPF_MAP_TYPE_RINGBUF map on a background thread; each sample is
 * delivered to `onSample` on the JS thread as a Buffer copy. close() stops the
 * thread (joined), drops undelivered samples and releases the event loop.
 */
export class RingBuffer {
  #rb: NativeRingBuf | null;

  constructor(map: BpfMap, onSample: (data: Buffer) => void, opts: RingBufferOptions = {}) {
    if (map.type !== MapType.RINGBUF) {
      throw new BpfError('ringbuf.open', errnoValue('EINVAL'), { target: map.name, detail: `map type ${map.type} is not a ring buffer` });
    }
    const n = native();
    const warn = (err: unknown): void =>
      process.emitWarning(`ring buffer ${map.name}: sample handler threw: ${String(err)}`, 'LilithBpfWarning');
    const onError = opts.onError ?? warn;
    const deliver = (data: Buffer): void => {
      try {
        onSample(data);
      } catch (err) {
        onError(err, data);
      }
    };
    try {
      this.#rb = new n.RingBuf(map.fd, deliver);
    } catch (e) {
      const errno = (e as { errno?: number }).errno;
      if (typeof errno === 'number') throw new BpfError('ringbuf.open', errno, { target: map.name, log: lastLog() });
      throw e;
    }
    if (opts.ref === false) this.#rb.unref();
  }

  /** Keep the event loop alive while open (the default). */
  ref(): void {
    this.#rb?.ref();
  }

  /** Let the process exit while this ring buffer is still open. */
  unref(): void {
    this.#rb?.unref();
  }

  get closed(): boolean {
    return this.#rb === null;
  }

  /** Idempotent. */
  close(): void {
    if (!this.#rb) return;
    this.#rb.close();
    this.#rb = null;
  }
}
