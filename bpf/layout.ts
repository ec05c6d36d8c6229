// Byte layouts of the structs in bpf/src/lilith.h, encoded and decoded for the
// maps and the ring buffer. Pure functions: no kernel needed to test them.
import { isIPv4, isIPv6 } from 'node:net';

export const CFG_INTERCEPT = 1;
export const CFG_EXEC_ALLOWLIST = 2;
export const CFG_WX = 4;

export const ID_MANAGED = 1;
export const ID_CLASSIFIED = 2;
export const ID_JIT = 4;

export const AF_INET = 2;
export const AF_INET6 = 10;

/** enum lilith_hook, index = value. */
export const HOOK_NAMES = [
  '',
  'bprm_check_security',
  'socket_connect',
  'socket_create',
  'socket_sendmsg',
  'mmap_file',
  'file_mprotect',
  'mmap_addr',
  'connect4',
  'connect6',
  'sendmsg4',
  'sendmsg6',
  'sock_create',
  'task_alloc',
  'unix_stream_connect',
  'unix_may_send',
  'connect_unix',
  'sendmsg_unix',
  'ptrace_access_check',
  'task_kill',
  'file_fcntl',
  'file_ioctl',
] as const;

/** enum lilith_reason, index = value. */
export const REASON_NAMES = [
  '',
  'heartbeat_stale',
  'unclassified',
  'not_proxy',
  'udp',
  'raw_socket',
  'packet_socket',
  'denied_family',
  'icmp',
  'fastopen',
  'exec_not_allowed',
  'anon_exec',
  'write_exec',
  'low_address',
  'protocol',
  'unix_path',
  'protected_task',
  'file_owner',
] as const;

export const SIZES = { config: 64, ident: 8, classifyKey: 16, inodeKey: 16, orig: 48, tupleKey: 20, unixKey: 116, event: 176 } as const;

// ---- addresses -------------------------------------------------------------

/** 16 bytes for an IP address; IPv4 becomes ::ffff:a.b.c.d. Throws on anything else. */
export function ip16(address: string): Buffer {
  if (isIPv4(address)) return Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...address.split('.').map(Number)]);
  if (!isIPv6(address)) throw new TypeError(`not an IP address: ${JSON.stringify(address)}`);
  let text = address.split('%')[0]!;
  let tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    tail = text
      .slice(lastColon + 1)
      .split('.')
      .map(Number);
    text = text.slice(0, lastColon + 1) + '0:0';
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const hs = head ? head.split(':') : [];
  const rs = rest === undefined ? [] : rest ? rest.split(':') : [];
  const fill = rest === undefined ? 0 : 8 - hs.length - rs.length;
  const groups = [...hs, ...Array<string>(fill).fill('0'), ...rs].map((g) => parseInt(g, 16));
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => {
    out.writeUInt16BE(g, i * 2);
  });
  if (tail.length === 4) Buffer.from(tail).copy(out, 12);
  return out;
}

/** 4 bytes (network order) of an IPv4 address. */
export function ip4(address: string): Buffer {
  if (!isIPv4(address)) throw new TypeError(`not an IPv4 address: ${JSON.stringify(address)}`);
  return Buffer.from(address.split('.').map(Number));
}

const isMapped = (b: Buffer): boolean => b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;

/** The textual form of 16 address bytes: dotted IPv4 for ::ffff:a.b.c.d, else compressed IPv6. */
export function ipString(b: Buffer): { address: string; family: 4 | 6 } {
  if (isMapped(b)) return { address: [...b.subarray(12, 16)].join('.'), family: 4 };
  const groups = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2));
  // Longest run of zero groups (length ≥ 2) becomes "::".
  let best = -1,
    bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return { address: hex.join(':'), family: 6 };
  return { address: `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`, family: 6 };
}

// ---- structs ----------------------------------------------------------------

export interface KernelSettings {
  readonly heartbeatTtlNs: bigint;
  readonly deniedFamilies: readonly number[];
  readonly proxyV4: string;
  readonly proxyV6: string;
  readonly proxyPort: number;
  readonly dnsPort: number;
  readonly flags: number;
  readonly minAddr: number;
  /** Cgroup (id, level) the interception programs are attached to. */
  readonly interceptCgroupId: bigint;
  readonly interceptLevel: number;
}

export function encodeConfig(c: KernelSettings): Buffer {
  const b = Buffer.alloc(SIZES.config);
  b.writeBigUInt64LE(c.heartbeatTtlNs, 0);
  let mask = 0n;
  for (const f of c.deniedFamilies) {
    if (!Number.isInteger(f) || f < 0 || f > 63) throw new RangeError(`denied family ${f} is not a socket family (0-63)`);
    mask |= 1n << BigInt(f);
  }
  b.writeBigUInt64LE(mask, 8);
  ip4(c.proxyV4).copy(b, 16);
  b.writeUInt32LE(c.flags, 20);
  ip16(c.proxyV6).copy(b, 24);
  b.writeUInt16LE(c.proxyPort, 40);
  b.writeUInt16LE(c.dnsPort, 42);
  b.writeUInt32LE(c.minAddr, 44);
  b.writeBigUInt64LE(c.interceptCgroupId, 48);
  b.writeUInt32LE(c.interceptLevel, 56);
  return b;
}

export function encodeIdent(identity: number, flags: number): Buffer {
  const b = Buffer.alloc(SIZES.ident);
  b.writeUInt32LE(identity, 0);
  b.writeUInt32LE(flags, 4);
  return b;
}

export function decodeIdent(b: Buffer): { identity: number; flags: number } {
  return { identity: b.readUInt32LE(0), flags: b.readUInt32LE(4) };
}

export function classifyKey(tgid: number, startNs: bigint): Buffer {
  const b = Buffer.alloc(SIZES.classifyKey);
  b.writeUInt32LE(tgid, 0);
  b.writeBigUInt64LE(startNs, 8);
  return b;
}

/** Key for {dev, ino}; `kernelDev` is the kernel's encoding (see cgroups.ts kernelDev). */
/** `identity` (the key's pad) is 0 except in lil_exec_id, the per-identity exec allowlist. */
export function inodeKey(kernelDev: number, ino: bigint, identity = 0): Buffer {
  const b = Buffer.alloc(SIZES.inodeKey);
  b.writeBigUInt64LE(ino, 0);
  b.writeUInt32LE(kernelDev, 8);
  b.writeUInt32LE(identity, 12);
  return b;
}

/** IP protocol numbers a tuple key carries in its pad (struct lilith_tuple_key). */
const TUPLE_PROTOCOL = { tcp: 0, udp: 17 } as const;

/**
 * Key for lil_orig_tp: the peer's address and port as the proxy (TCP, written by
 * sockops) or the DNS front (UDP, written by cgroup_skb egress) sees them. The
 * two never share an entry, so a datagram cannot overwrite a connection's record.
 */
export function tupleKey(address: string, port: number, transport: 'tcp' | 'udp' = 'tcp'): Buffer {
  const b = Buffer.alloc(SIZES.tupleKey);
  ip16(address).copy(b, 0);
  b.writeUInt16LE(port, 16);
  b.writeUInt16LE(TUPLE_PROTOCOL[transport], 18);
  return b;
}

/** Longest AF_UNIX name (sun_path) the kernel accepts. */
export const UNIX_PATH_MAX = 108;

/**
 * Allowlist key (struct lilith_unix_key) for an AF_UNIX address: a pathname
 * ("/run/nscd/socket", matched exactly as bound/passed, no normalisation) or
 * an abstract name written with its leading NUL ("\0name", Node's notation).
 * Throws a TypeError saying what is wrong.
 */
export function unixKey(path: string): Buffer {
  if (typeof path !== 'string' || path.length === 0) throw new TypeError('unix socket path must be a non-empty string');
  const bytes = Buffer.from(path, 'utf8');
  const abstract = bytes[0] === 0;
  if (abstract && bytes.length < 2) throw new TypeError('abstract unix socket name is empty');
  if (!abstract && bytes.includes(0)) throw new TypeError(`unix socket path ${JSON.stringify(path)} contains a NUL byte`);
  if (bytes.length > UNIX_PATH_MAX)
    throw new TypeError(`unix socket path ${JSON.stringify(path)} is ${bytes.length} bytes (at most ${UNIX_PATH_MAX})`);
  const b = Buffer.alloc(SIZES.unixKey);
  b.writeUInt32LE(bytes.length, 0);
  bytes.copy(b, 4);
  return b;
}

/** The address a unixKey encodes (abstract names come back with their leading NUL). */
export function decodeUnixKey(b: Buffer): string {
  return b.subarray(4, 4 + b.readUInt32LE(0)).toString('utf8');
}

export interface OriginalDestination {
  /** Where the application meant to connect (dotted IPv4 for IPv4 and v4-mapped destinations). */
  readonly address: string;
  readonly port: number;
  /** IP family of the destination: 4 (including v4-mapped) or 6. */
  readonly family: 4 | 6;
  /** Socket family the application used (2 = AF_INET, 10 = AF_INET6). */
  readonly socketFamily: number;
  readonly pid: number;
  readonly tgid: number;
  readonly uid: number;
  readonly gid: number;
  /** Identity id the kernel had for the process at connect time (0 = none). */
  readonly identity: number;
  readonly cgroupId: bigint;
}

export function decodeOrig(b: Buffer): OriginalDestination {
  const { address, family } = ipString(b.subarray(0, 16));
  return {
    address,
    family,
    port: b.readUInt16LE(16),
    socketFamily: b.readUInt16LE(18),
    pid: b.readUInt32LE(20),
    tgid: b.readUInt32LE(24),
    uid: b.readUInt32LE(28),
    gid: b.readUInt32LE(32),
    identity: b.readUInt32LE(36),
    cgroupId: b.readBigUInt64LE(40),
  };
}

export type KernelEvent = ExecEvent | DenyEvent;

interface EventBase {
  /** CLOCK_MONOTONIC ns. */
  readonly ts: bigint;
  readonly pid: number;
  readonly tgid: number;
  readonly uid: number;
  readonly gid: number;
  readonly identity: number;
  readonly managed: boolean;
  readonly classified: boolean;
  readonly jit: boolean;
  readonly cgroupId: bigint;
  readonly comm: string;
}

/** A managed process exec'd: classify it with registerIdentity({pid: tgid, startNs}, …). */
export interface ExecEvent extends EventBase {
  readonly kind: 'exec';
  /** Group leader start time (ns since boot): with tgid, the process's unique key. */
  readonly startNs: bigint;
  readonly path: string;
  readonly dev: number;
  readonly ino: bigint;
}

export interface DenyEvent extends EventBase {
  readonly kind: 'deny';
  readonly hook: string;
  readonly reason: string;
  /** Destination, for network denials that had one. */
  readonly destination?: { address: string; port: number; family: number };
  readonly dev?: number;
  readonly ino?: bigint;
  readonly path?: string;
  /** ptrace/signal denials (reason protected_task): the target process and the signal (0 for ptrace and kill -0). */
  readonly target?: { tgid: number; signal: number };
}

const cstr = (b: Buffer): string => {
  const z = b.indexOf(0);
  return b.subarray(0, z < 0 ? b.length : z).toString('utf8');
};

export function decodeEvent(b: Buffer): KernelEvent | null {
  if (b.length < SIZES.event) return null;
  const kind = b.readUInt32LE(32);
  const flags = b.readUInt32LE(64);
  const base: EventBase = {
    ts: b.readBigUInt64LE(0),
    cgroupId: b.readBigUInt64LE(8),
    pid: b.readUInt32LE(44),
    tgid: b.readUInt32LE(48),
    uid: b.readUInt32LE(52),
    gid: b.readUInt32LE(56),
    identity: b.readUInt32LE(60),
    managed: (flags & ID_MANAGED) !== 0,
    classified: (flags & ID_CLASSIFIED) !== 0,
    jit: (flags & ID_JIT) !== 0,
    comm: cstr(b.subarray(92, 108)),
  };
  const dev = b.readUInt32LE(68);
  const ino = b.readBigUInt64LE(24);
  const path = cstr(b.subarray(108, 172));
  if (kind === 1) return { ...base, kind: 'exec', startNs: b.readBigUInt64LE(16), path, dev, ino };
  if (kind !== 2) return null;
  const family = b.readUInt16LE(72);
  const port = b.readUInt16LE(74);
  const addr = b.subarray(76, 92);
  const hasDest = family === AF_INET || family === AF_INET6 ? addr.some((x) => x !== 0) || port !== 0 : false;
  return {
    ...base,
    kind: 'deny',
    hook: HOOK_NAMES[b.readUInt32LE(36)] ?? `hook#${b.readUInt32LE(36)}`,
    reason: REASON_NAMES[b.readUInt32LE(40)] ?? `reason#${b.readUInt32LE(40)}`,
    ...(hasDest ? { destination: { ...ipString(Buffer.from(addr)), port } } : {}),
    ...(ino ? { dev, ino } : {}),
    ...(path ? { path } : {}),
    ...(b.readUInt32LE(40) === REASON_NAMES.indexOf('protected_task')
      ? { target: { tgid: Number(b.readBigUInt64LE(16)), signal: port } }
      : {}),
  };
}
