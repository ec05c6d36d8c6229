// The enforcer-facing kernel API. attach(config) loads (or re-adopts) Lilith's
// BPF programs, pins them under the pin root so they outlive the daemon, and
// returns a Kernel: heartbeat, identities, exec allowlist, proxy settings,
// original destinations for the proxy, events, detach. See docs/kernel.md.
import { existsSync, mkdirSync, readdirSync, rmSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { isIPv4, isIPv6 } from 'node:net';
import { BpfError, BpfLink, BpfMap, BpfObject, RingBuffer, monotonicNs, objectPath } from './loader.js';
import { bpfLsmActive, probeBpfLsm } from './features.js';
import { ensureBpffs } from './mounts.js';
import { cgroupId, cgroupLevel, inodeOf, kernelDev } from './cgroups.js';
import {
  CFG_EXEC_ALLOWLIST,
  CFG_INTERCEPT,
  CFG_WX,
  ID_JIT,
  ID_MANAGED,
  classifyKey,
  decodeEvent,
  decodeOrig,
  encodeConfig,
  encodeIdent,
  inodeKey,
  SIZES,
  tupleKey,
  decodeUnixKey,
  unixKey,
  type KernelEvent,
  type KernelSettings,
  type OriginalDestination,
} from './layout.js';
import { MAP_NAMES, PROGRAMS, type MapName, type ProgramSpec } from './programs.js';

export type { KernelEvent, ExecEvent, DenyEvent, OriginalDestination } from './layout.js';
export { cgroupId, cgroupLevel, inodeOf, kernelDev } from './cgroups.js';

export type KernelMode = 'bpf-lsm' | 'cgroup-only';

export const DEFAULT_PIN_ROOT = '/sys/fs/bpf/lilith';

export interface ProxySettings {
  /** IPv4 address the proxy listens on (managed AF_INET connects go here). */
  readonly address: string;
  /** Where AF_INET6 connects go. @default `::ffff:<address>` (the IPv4 listener, via v4-mapped) */
  readonly address6?: string;
  /** The proxy's TCP port. */
  readonly port: number;
  /** The proxy's DNS (UDP) port; UDP 53 from managed processes is sent here. */
  readonly dnsPort: number;
}

export interface KernelConfig {
  /** cgroup v2 directory the cgroup programs attach to (the agent subtree, or the cgroup2 root). */
  readonly cgroupPath: string;
  readonly proxy: ProxySettings;
  /** @default '/sys/fs/bpf/lilith' (tests use their own root so they never touch a real daemon's pins) */
  readonly pinRoot?: string;
  /** @default 'auto': BPF-LSM when `bpf` is an active LSM and a probe program fires, else cgroup-only */
  readonly mode?: 'auto' | KernelMode;
  /** Managed network traffic is denied once the heartbeat is older than this. @default 1000 */
  readonly heartbeatTtlMs?: number;
  /** Socket families (AF_* numbers) managed processes may not create (BPF-LSM). @default [] */
  readonly deniedFamilies?: readonly number[];
  /** Exec and PROT_EXEC file mappings only from allowlisted/registered inodes (BPF-LSM). @default true */
  readonly execAllowlist?: boolean;
  /** W^X: no anonymous PROT_EXEC memory for non-JIT identities (BPF-LSM). @default true */
  readonly wx?: boolean;
  /** Managed mappings below this address are denied (BPF-LSM). @default 65536 */
  readonly minAddr?: number;
  /**
   * Attach the interception path (connect/sendmsg redirection to the proxy,
   * original destinations). false in BPF-LSM mode means managed processes may
   * only connect to the proxy address directly. Always true in cgroup-only mode.
   * @default true
   */
  readonly intercept?: boolean;
  /**
   * AF_UNIX addresses managed processes may connect/send to, matched exactly:
   * pathnames as bound ("/run/nscd/socket") and abstract names with their
   * leading NUL ("\0name"). Everything else is denied (unix_path). Replaces
   * whatever allowlist is pinned. @default [] (no unix sockets)
   */
  readonly unixAllowlist?: readonly string[];
  /** Directory of the compiled objects. @default <repo>/bpf/build */
  readonly objectDir?: string;
}

export interface HookStatus {
  readonly active: string[];
  readonly missing: { hook: string; reason: string }[];
}

/** Selects the processes an identity applies to. */
export type IdentitySelector =
  /** Every process in this cgroup v2 directory and below. */
  | { readonly cgroup: string }
  /** Exec of this binary (by its device and inode at registration time). */
  | { readonly binary: string }
  | { readonly dev: number | bigint; readonly ino: bigint }
  /** One running process, from an exec event: tgid and group-leader start time. */
  | { readonly pid: number; readonly startNs: bigint };

export interface IdentityOptions {
  /** Allowed anonymous executable memory (JIT runtimes). @default false */
  readonly jit?: boolean;
}

export class KernelConfigError extends Error {
  readonly field: string;
  constructor(field: string, message: string) {
    super(`kernel config ${field}: ${message}`);
    this.name = 'KernelConfigError';
    this.field = field;
  }
}

interface Resolved {
  readonly cgroupPath: string;
  readonly pinRoot: string;
  readonly mode: 'auto' | KernelMode;
  readonly intercept: boolean;
  readonly objectDir?: string;
  readonly settings: KernelSettings;
  readonly unixKeys: Buffer[];
}

function isPort(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n > 0 && n < 65536;
}

function settingsOf(c: KernelConfig, intercept: boolean, where: { id: bigint; level: number }): KernelSettings {
  const p = c.proxy;
  if (!p || typeof p !== 'object') throw new KernelConfigError('proxy', 'is required');
  if (!isIPv4(p.address)) throw new KernelConfigError('proxy.address', `${JSON.stringify(p.address)} is not an IPv4 address`);
  const v6 = p.address6 ?? `::ffff:${p.address}`;
  if (!isIPv6(v6)) throw new KernelConfigError('proxy.address6', `${JSON.stringify(v6)} is not an IPv6 address`);
  if (!isPort(p.port)) throw new KernelConfigError('proxy.port', `${String(p.port)} is not a port (1-65535)`);
  if (!isPort(p.dnsPort)) throw new KernelConfigError('proxy.dnsPort', `${String(p.dnsPort)} is not a port (1-65535)`);
  const ttl = c.heartbeatTtlMs ?? 1000;
  if (!Number.isFinite(ttl) || ttl < 50 || ttl > 3_600_000) throw new KernelConfigError('heartbeatTtlMs', `${ttl} is outside 50..3600000`);
  const minAddr = c.minAddr ?? 65536;
  if (!Number.isInteger(minAddr) || minAddr < 0 || minAddr > 0xffffffff) throw new KernelConfigError('minAddr', `${minAddr} is not a 32-bit address`);
  for (const f of c.deniedFamilies ?? []) {
    if (!Number.isInteger(f) || f < 0 || f > 63) throw new KernelConfigError('deniedFamilies', `${f} is not a socket family (0-63)`);
    if (f === 2 || f === 10) throw new KernelConfigError('deniedFamilies', `denying AF_INET/AF_INET6 (${f}) would cut managed processes off from the proxy`);
  }
  return {
    heartbeatTtlNs: BigInt(Math.round(ttl * 1e6)),
    deniedFamilies: [...(c.deniedFamilies ?? [])],
    proxyV4: p.address,
    proxyV6: v6,
    proxyPort: p.port,
    dnsPort: p.dnsPort,
    minAddr,
    flags: (intercept ? CFG_INTERCEPT : 0) | (c.execAllowlist === false ? 0 : CFG_EXEC_ALLOWLIST) | (c.wx === false ? 0 : CFG_WX),
    interceptCgroupId: where.id,
    interceptLevel: where.level,
  };
}

function resolve(c: KernelConfig): Resolved {
  if (!c || typeof c !== 'object') throw new KernelConfigError('config', 'is required');
  const mode = c.mode ?? 'auto';
  if (!['auto', 'bpf-lsm', 'cgroup-only'].includes(mode)) throw new KernelConfigError('mode', `${JSON.stringify(mode)} is not auto, bpf-lsm or cgroup-only`);
  if (typeof c.cgroupPath !== 'string' || !existsSync(join(c.cgroupPath, 'cgroup.procs'))) {
    throw new KernelConfigError('cgroupPath', `${JSON.stringify(c.cgroupPath)} is not a cgroup v2 directory`);
  }
  const intercept = mode === 'cgroup-only' ? true : c.intercept ?? true;
  if (c.unixAllowlist !== undefined && !Array.isArray(c.unixAllowlist)) throw new KernelConfigError('unixAllowlist', 'must be an array of socket paths');
  const unixKeys = (c.unixAllowlist ?? []).map((p, i) => {
    try {
      return unixKey(p);
    } catch (err) {
      throw new KernelConfigError(`unixAllowlist[${i}]`, (err as Error).message);
    }
  });
  return {
    unixKeys,
    cgroupPath: c.cgroupPath,
    pinRoot: c.pinRoot ?? DEFAULT_PIN_ROOT,
    mode,
    intercept,
    objectDir: c.objectDir,
    settings: settingsOf(c, intercept, { id: cgroupId(c.cgroupPath), level: cgroupLevel(c.cgroupPath) }),
  };
}

/** Why BPF-LSM cannot be used here, or null when it can. */
function lsmUnavailable(objectDir?: string): string | null {
  if (!bpfLsmActive()) return 'bpf is not in the active LSM list (/sys/kernel/security/lsm); boot with lsm=...,bpf';
  const probe = probeBpfLsm(objectDir ? join(objectDir, 'lsm_probe.bpf.o') : undefined);
  if (!probe.fires) return probe.error ?? 'BPF-LSM probe did not fire';
  return null;
}

const linkPath = (pinRoot: string, spec: ProgramSpec): string => join(pinRoot, 'links', spec.program);

/**
 * Maps pinned by a build with other struct layouts cannot be reused (libbpf
 * would refuse with a terse log line): say so, and how to clear them. Never
 * removes them itself: they are what keeps the running enforcement.
 */
function refuseIncompatiblePins(pinRoot: string): void {
  const path = join(pinRoot, 'lil_config');
  if (!existsSync(path)) return;
  const m = BpfMap.openPinned(path);
  try {
    if (m.valueSize !== SIZES.config) {
      throw new BpfError('attach', 22 /* EINVAL */, {
        target: pinRoot,
        detail: `maps pinned under ${pinRoot} come from an incompatible Lilith build (config is ${m.valueSize} bytes, this build uses ${SIZES.config}); detach them first (detachPinned('${pinRoot}'))`,
      });
    }
  } finally {
    m.close();
  }
}

/** A pinned link still doing its job: same cgroup for cgroup programs. */
function adoptable(link: BpfLink, spec: ProgramSpec, cgId: bigint): boolean {
  if (spec.kind === 'lsm') return true;
  try {
    return link.info().cgroupId === cgId;
  } catch {
    return false;
  }
}

/**
 * Loads Lilith's programs (or re-adopts the ones pinned under the pin root by
 * a previous daemon, without a moment unattached), writes the config and a
 * first heartbeat, and returns the handle the enforcer uses.
 */
export async function attach(config: KernelConfig): Promise<Kernel> {
  const r = resolve(config);
  ensureBpffs();
  mkdirSync(join(r.pinRoot, 'links'), { recursive: true });

  let mode: KernelMode = r.mode === 'cgroup-only' ? 'cgroup-only' : 'bpf-lsm';
  let lsmWhy: string | null = r.mode === 'cgroup-only' ? 'cgroup-only mode requested' : lsmUnavailable(r.objectDir);
  if (lsmWhy && r.mode === 'bpf-lsm') throw new BpfError('attach', 95 /* EOPNOTSUPP */, { detail: `BPF-LSM requested but unavailable: ${lsmWhy}` });
  if (lsmWhy) mode = 'cgroup-only';

  refuseIncompatiblePins(r.pinRoot);
  const cgId = cgroupId(r.cgroupPath);
  const wantedIn = (m: KernelMode): ProgramSpec[] =>
    PROGRAMS.filter((s) => (s.kind === 'lsm' ? m === 'bpf-lsm' : s.cgroupModeOnly ? m === 'cgroup-only' : r.intercept || !s.intercept));
  const wanted = wantedIn(mode);
  const mapsPinned = MAP_NAMES.every((m) => existsSync(join(r.pinRoot, m)));

  // Re-adopt what a previous daemon pinned; everything else needs a load.
  const adopted = new Map<string, BpfLink>();
  const stale = new Map<string, BpfLink>();
  for (const spec of wanted) {
    const path = linkPath(r.pinRoot, spec);
    if (!existsSync(path)) continue;
    try {
      const link = BpfLink.openPinned(path);
      if (mapsPinned && adoptable(link, spec, cgId)) adopted.set(spec.program, link);
      else stale.set(spec.program, link);
    } catch {
      rmSync(path, { force: true });
    }
  }
  let toAttach = wanted.filter((s) => !adopted.has(s.program));

  // Load each object that has programs to attach; its maps are created or
  // reused from the pins. An LSM object that fails to load in auto mode drops
  // us to cgroup-only with the reason recorded.
  const objects = new Map<string, BpfObject>();
  const objPath = (name: string): string => (r.objectDir ? join(r.objectDir, `${name}.bpf.o`) : objectPath(name));
  const missing: { hook: string; reason: string }[] = [];
  const unsupported = new Set<string>(); // optional programs this kernel cannot load or attach
  try {
    const queue = [...new Set(toAttach.map((s) => s.object))];
    for (let i = 0; i < queue.length; i++) {
      const name = queue[i]!;
      const obj = BpfObject.open(objPath(name), { pinRoot: r.pinRoot });
      try {
        for (const p of obj.programs()) {
          const spec = toAttach.find((s) => s.program === p.name);
          if (!spec) p.setAutoload(false);
          else if (spec.types) p.setType(spec.types.prog, spec.types.attach);
        }
        obj.load();
        objects.set(name, obj);
      } catch (err) {
        obj.close();
        const specs = PROGRAMS.filter((s) => s.object === name);
        if (specs.every((s) => s.cgroupModeOnly)) {
          // A kernel older than the hook (connect_unix: Linux 6.7) refuses the program type.
          for (const s of specs) {
            unsupported.add(s.program);
            missing.push({ hook: s.hook, reason: `this kernel cannot load it (${(err as Error).message.split('\n')[0]}); needs Linux 6.7+` });
          }
          continue;
        }
        const isLsm = specs.some((s) => s.kind === 'lsm');
        if (!isLsm || r.mode === 'bpf-lsm') throw withLogTail(err);
        lsmWhy = `loading ${name} failed: ${(err as Error).message}`;
        if (mode === 'bpf-lsm') {
          // Fall back: the cgroup-only programs are now wanted too.
          mode = 'cgroup-only';
          const more = wantedIn('cgroup-only').filter((s) => s.cgroupModeOnly && !adopted.has(s.program));
          toAttach = [...toAttach, ...more];
          for (const o of new Set(more.map((s) => s.object))) if (!queue.includes(o)) queue.push(o);
        }
      }
    }
    if (mode === 'cgroup-only' && lsmWhy) {
      for (const s of PROGRAMS.filter((p) => p.kind === 'lsm')) missing.push({ hook: s.hook, reason: lsmWhy });
    }
    if (!MAP_NAMES.every((m) => existsSync(join(r.pinRoot, m)))) {
      // Nothing loaded and nothing pinned: load the always-present object for the maps.
      const obj = BpfObject.open(objPath('cgroup_sock'), { pinRoot: r.pinRoot });
      obj.programs().forEach((p) => p.setAutoload(false));
      obj.load();
      obj.close();
    }

    const kernel = new Kernel(r, mode, { active: [], missing });
    // Config and a fresh heartbeat before any new program can run.
    kernel.configure({});
    kernel.setHeartbeat();

    kernel.setUnixAllowlist(r.unixKeys);

    const links: BpfLink[] = [...adopted.values()];
    const active: string[] = wanted.filter((s) => adopted.has(s.program)).map((s) => s.hook);
    for (const spec of toAttach) {
      if (spec.kind === 'lsm' && mode !== 'bpf-lsm') continue;
      if (unsupported.has(spec.program)) continue;
      const obj = objects.get(spec.object);
      if (!obj) continue;
      const prog = obj.program(spec.program);
      let link: BpfLink;
      try {
        link = spec.kind === 'lsm' ? prog.attachLsm() : prog.attachCgroup(r.cgroupPath);
      } catch (err) {
        if (!spec.cgroupModeOnly) throw err;
        missing.push({ hook: spec.hook, reason: `attach failed: ${(err as Error).message}` });
        continue;
      }
      // The new link is attached before the old one goes: no gap.
      const old = stale.get(spec.program);
      if (old) {
        try {
          old.unpin();
        } catch {
          rmSync(linkPath(r.pinRoot, spec), { force: true });
        }
        old.destroy();
        stale.delete(spec.program);
      }
      link.pin(linkPath(r.pinRoot, spec));
      links.push(link);
      active.push(spec.hook);
    }
    for (const old of stale.values()) old.destroy();
    kernel.adopt(links, active, adopted.size > 0 && toAttach.length === 0);
    return kernel;
  } finally {
    for (const obj of objects.values()) obj.close();
  }
}

/** A load failure whose message carries the end of the verifier log (the line that matters). */
function withLogTail(err: unknown): unknown {
  if (!(err instanceof BpfError) || !err.log) return err;
  const tail = err.log.split('\n').filter((l) => l.trim()).slice(-12).join('\n');
  return new BpfError(err.operation, err.errno, { log: err.log, detail: `${err.message}\nverifier log (end):\n${tail}` });
}

type Listener = (e: KernelEvent) => void;

export class Kernel {
  readonly mode: KernelMode;
  readonly pinRoot: string;
  readonly cgroupPath: string;
  readonly hooks: HookStatus;
  /** True when every program was re-adopted from pins (no load, no attach). */
  adopted = false;
  #settings: KernelSettings;
  #links: BpfLink[] = [];
  #maps = new Map<MapName, BpfMap>();
  #timer: NodeJS.Timeout | null = null;
  #ring: RingBuffer | null = null;
  #listeners = new Set<Listener>();
  #closed = false;

  /** @internal use attach() */
  constructor(r: Resolved, mode: KernelMode, hooks: HookStatus) {
    this.mode = mode;
    this.pinRoot = r.pinRoot;
    this.cgroupPath = r.cgroupPath;
    this.hooks = hooks;
    this.#settings = r.settings;
  }

  /** @internal */
  adopt(links: BpfLink[], active: string[], adopted: boolean): void {
    this.#links = links;
    this.hooks.active.push(...active);
    this.adopted = adopted;
  }

  #map(name: MapName): BpfMap {
    if (this.#closed) throw new BpfError('kernel', 9 /* EBADF */, { detail: 'kernel handle is closed' });
    let m = this.#maps.get(name);
    if (!m) {
      m = BpfMap.openPinned(join(this.pinRoot, name));
      this.#maps.set(name, m);
    }
    return m;
  }

  /** Current settings as written to the config map. */
  get settings(): KernelSettings {
    return this.#settings;
  }

  /**
   * Rewrites the config map (a capsule swap: proxy, TTL, families, flags).
   * Validates first; a bad value throws KernelConfigError and changes nothing.
   */
  configure(update: Partial<Pick<KernelConfig, 'proxy' | 'heartbeatTtlMs' | 'deniedFamilies' | 'execAllowlist' | 'wx' | 'minAddr'>>): void {
    const s = this.#settings;
    const merged: KernelConfig = {
      cgroupPath: this.cgroupPath,
      proxy: update.proxy ?? { address: s.proxyV4, address6: s.proxyV6, port: s.proxyPort, dnsPort: s.dnsPort },
      heartbeatTtlMs: update.heartbeatTtlMs ?? Number(s.heartbeatTtlNs) / 1e6,
      deniedFamilies: update.deniedFamilies ?? s.deniedFamilies,
      execAllowlist: update.execAllowlist ?? (s.flags & CFG_EXEC_ALLOWLIST) !== 0,
      wx: update.wx ?? (s.flags & CFG_WX) !== 0,
      minAddr: update.minAddr ?? s.minAddr,
    };
    const next = settingsOf(merged, (s.flags & CFG_INTERCEPT) !== 0, { id: s.interceptCgroupId, level: s.interceptLevel });
    this.#map('lil_config').update(Buffer.alloc(4), encodeConfig(next));
    this.#settings = next;
  }

  /** Points managed traffic at a (new) proxy address/ports. */
  setProxy(proxy: ProxySettings): void {
    this.configure({ proxy });
  }

  /** Writes DAEMON_HEARTBEAT (CLOCK_MONOTONIC ns, default now). */
  setHeartbeat(ns: bigint = monotonicNs()): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(ns);
    this.#map('lil_heartbeat').update(Buffer.alloc(4), b);
  }

  /**
   * Heartbeats every intervalMs (default 250) until stopHeartbeat()/close().
   * The timer does not keep the process alive on its own (the daemon does).
   */
  startHeartbeat(intervalMs = 250): void {
    this.stopHeartbeat();
    this.setHeartbeat();
    this.#timer = setInterval(() => {
      try {
        this.setHeartbeat();
      } catch {
        // A failed beat is a missed beat: the kernel fails closed on its own.
      }
    }, intervalMs);
    this.#timer.unref();
  }

  stopHeartbeat(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  /**
   * Names the identity (a number ≥ 1 the enforcer maps to a SPIFFE ID) of the
   * processes a selector matches. A cgroup or binary registration also makes
   * those processes managed.
   */
  registerIdentity(selector: IdentitySelector, identity: number, opts: IdentityOptions = {}): void {
    if (!Number.isInteger(identity) || identity < 1 || identity > 0xffffffff) {
      throw new KernelConfigError('identity', `${identity} is not an identity id (1..2^32-1)`);
    }
    this.#writeIdent(selector, identity, opts);
  }

  /** Makes a cgroup subtree managed without an identity yet: its network is denied until classified. */
  manageCgroup(dir: string, opts: IdentityOptions = {}): void {
    this.#writeIdent({ cgroup: dir }, 0, opts);
  }

  /** Removes a registration (running tasks keep what they already inherited). */
  unregisterIdentity(selector: IdentitySelector): boolean {
    const [map, key] = this.#selectorKey(selector);
    return this.#map(map).delete(key);
  }

  #writeIdent(selector: IdentitySelector, identity: number, opts: IdentityOptions): void {
    const [map, key] = this.#selectorKey(selector);
    const flags = ID_MANAGED | (opts.jit ? ID_JIT : 0);
    this.#map(map).update(key, encodeIdent(identity, flags));
  }

  #selectorKey(sel: IdentitySelector): [MapName, Buffer] {
    if ('cgroup' in sel) {
      const key = Buffer.alloc(8);
      key.writeBigUInt64LE(cgroupId(sel.cgroup));
      return ['lil_cgroups', key];
    }
    if ('binary' in sel) {
      const { dev, ino } = inodeOf(sel.binary);
      return ['lil_exec_reg', inodeKey(dev, ino)];
    }
    if ('ino' in sel) return ['lil_exec_reg', inodeKey(kernelDev(sel.dev), BigInt(sel.ino))];
    if ('pid' in sel && Number.isInteger(sel.pid) && sel.pid > 0 && typeof sel.startNs === 'bigint') {
      return ['lil_classify', classifyKey(sel.pid, sel.startNs)];
    }
    throw new KernelConfigError('selector', `${JSON.stringify(sel, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))} is not a cgroup, binary, {dev, ino} or {pid, startNs}`);
  }

  /**
   * Allows managed processes to connect/send to this AF_UNIX address (exact
   * match: a pathname as the server bound it, or "\0name" for an abstract
   * socket). Bad input throws KernelConfigError and changes nothing.
   */
  allowUnixPath(path: string): void {
    this.#map('lil_unix_ok').update(this.#unixKey(path), Buffer.from([1]));
  }

  /** Removes an AF_UNIX address from the allowlist; false when it was not there. */
  revokeUnixPath(path: string): boolean {
    return this.#map('lil_unix_ok').delete(this.#unixKey(path));
  }

  /** The AF_UNIX allowlist as pinned now. */
  unixAllowlist(): string[] {
    return this.#map('lil_unix_ok').keys().map(decodeUnixKey);
  }

  /** @internal Makes the pinned allowlist exactly these keys (attach: the config is the truth). */
  setUnixAllowlist(keys: readonly Buffer[]): void {
    const m = this.#map('lil_unix_ok');
    for (const k of keys) m.update(k, Buffer.from([1]));
    const want = new Set(keys.map((k) => k.toString('hex')));
    for (const k of m.keys()) if (!want.has(k.toString('hex'))) m.delete(k);
  }

  #unixKey(path: string): Buffer {
    try {
      return unixKey(path);
    } catch (err) {
      throw new KernelConfigError('unixPath', (err as Error).message);
    }
  }

  /** Allows managed processes to exec / map PROT_EXEC the file with this stat dev (st_dev) and inode. */
  allowExecInode(dev: number | bigint, ino: number | bigint): void {
    this.#map('lil_exec_ok').update(inodeKey(kernelDev(dev), BigInt(ino)), Buffer.from([1]));
  }

  /** allowExecInode for the file at `path` now (the inode, not the path, is allowed). */
  allowExecPath(path: string): void {
    const st = statSync(path, { bigint: true });
    this.allowExecInode(st.dev, st.ino);
  }

  revokeExecInode(dev: number | bigint, ino: number | bigint): boolean {
    return this.#map('lil_exec_ok').delete(inodeKey(kernelDev(dev), BigInt(ino)));
  }

  /**
   * For a connection the proxy accepted: where the client meant to go, and who
   * it was (recorded at connect time). `remoteAddress`/`remotePort` are the
   * accepted socket's peer (node's socket.remoteAddress/remotePort). null when
   * the connection was not redirected by Lilith.
   */
  originalDestination(peer: { remoteAddress?: string; remotePort?: number }): OriginalDestination | null {
    if (!peer.remoteAddress || !(isIPv4(peer.remoteAddress) || isIPv6(peer.remoteAddress)) || !isPort(peer.remotePort)) return null;
    const v = this.#map('lil_orig_tp').lookup(tupleKey(peer.remoteAddress, peer.remotePort));
    return v ? decodeOrig(v) : null;
  }

  /** Subscribes to exec and denial events; returns the unsubscribe function. */
  onEvent(listener: Listener): () => void {
    this.#listeners.add(listener);
    if (!this.#ring) {
      this.#ring = new RingBuffer(
        this.#map('lil_events'),
        (buf) => {
          const e = decodeEvent(buf);
          if (e) for (const l of this.#listeners) l(e);
        },
        { ref: false },
      );
    }
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0) {
        this.#ring?.close();
        this.#ring = null;
      }
    };
  }

  /** Events as an async iterator (ends when the iterator is returned or the kernel handle closes). */
  events(): AsyncIterableIterator<KernelEvent> {
    const queue: KernelEvent[] = [];
    let wake: (() => void) | null = null;
    let done = false;
    const off = this.onEvent((e) => {
      queue.push(e);
      wake?.();
    });
    const finish = (): void => {
      done = true;
      off();
      wake?.();
    };
    this.#onClose.add(finish);
    const it: AsyncIterableIterator<KernelEvent> = {
      [Symbol.asyncIterator]: () => it,
      next: async () => {
        while (!queue.length && !done) await new Promise<void>((r) => (wake = r));
        wake = null;
        if (queue.length) return { value: queue.shift()!, done: false };
        return { value: undefined, done: true };
      },
      return: async () => {
        finish();
        return { value: undefined, done: true };
      },
    };
    return it;
  }

  #onClose = new Set<() => void>();

  /**
   * Releases this process's handles (heartbeat timer, ring buffer, fds).
   * Pinned programs stay attached and keep enforcing: a managed process loses
   * network once the heartbeat goes stale.
   */
  close(): void {
    if (this.#closed) return;
    this.stopHeartbeat();
    for (const f of this.#onClose) f();
    this.#onClose.clear();
    this.#ring?.close();
    this.#ring = null;
    for (const l of this.#links) l.destroy();
    this.#links = [];
    for (const m of this.#maps.values()) m.close();
    this.#maps.clear();
    this.#closed = true;
  }

  /** Detaches every program pinned under the pin root and removes the pins: enforcement ends. */
  detachAll(): void {
    const root = this.pinRoot;
    this.close();
    detachPinned(root);
  }
}

/** Detaches and unpins everything under a pin root (also usable without a Kernel). */
export function detachPinned(pinRoot: string): void {
  const linksDir = join(pinRoot, 'links');
  if (existsSync(linksDir)) {
    for (const f of readdirSync(linksDir)) {
      const p = join(linksDir, f);
      let l: BpfLink | undefined;
      try {
        l = BpfLink.openPinned(p);
        // Cgroup links detach at once; LSM (tracing) links may not support
        // BPF_LINK_DETACH and go when their last reference (pin, fds) does.
        l.detach();
      } catch {
        // Not a link, already gone, or no detach: removing the pin and our fd is what is left.
      } finally {
        l?.destroy();
      }
      rmSync(p, { force: true });
    }
    rmdirSync(linksDir);
  }
  for (const m of MAP_NAMES) rmSync(join(pinRoot, m), { force: true });
  try {
    rmdirSync(pinRoot);
  } catch {
    // Something else lives there; leave it.
  }
}
