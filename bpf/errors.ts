// BpfError: the one error type of the BPF layer. The addon reports failures as
// -errno; this turns them into an error that names the operation, the errno and
// its symbolic code, and carries libbpf's log (the verifier log on a rejected load).
import { constants } from 'node:os';

const codeByErrno = new Map<number, string>();
for (const [name, value] of Object.entries(constants.errno)) {
  if (!codeByErrno.has(value)) codeByErrno.set(value, name);
}
// Aliases: name them the way the kernel source does (bpf returns -EOPNOTSUPP).
codeByErrno.set(constants.errno.EOPNOTSUPP, 'EOPNOTSUPP');
codeByErrno.set(constants.errno.EAGAIN, 'EAGAIN');

// libbpf's own error numbers (enum libbpf_errno, 4000…), returned like errnos.
const LIBBPF_ERRNO: Array<[string, string]> = [
  ['LIBBPF_LIBELF', 'libelf error (not an ELF file?)'],
  ['LIBBPF_FORMAT', 'BPF object format invalid'],
  ['LIBBPF_KVERSION', "incorrect or missing 'version' section"],
  ['LIBBPF_ENDIAN', 'endianness mismatch'],
  ['LIBBPF_INTERNAL', 'internal libbpf error'],
  ['LIBBPF_RELOC', 'relocation failed'],
  ['LIBBPF_LOAD', 'program load failed'],
  ['LIBBPF_VERIFY', 'rejected by the verifier'],
  ['LIBBPF_PROG2BIG', 'program too big'],
  ['LIBBPF_KVER', 'incorrect kernel version'],
  ['LIBBPF_PROGTYPE', 'program type not supported by this kernel'],
  ['LIBBPF_WRNGPID', 'wrong pid in netlink message'],
  ['LIBBPF_INVSEQ', 'invalid netlink sequence'],
  ['LIBBPF_NLPARSE', 'netlink parsing error'],
];
const LIBBPF_ERRNO_START = 4000;

/** Symbolic name of an errno value (`1` → `EPERM`, `4001` → `LIBBPF_FORMAT`), `E<n>` when unknown. */
export function errnoCode(errno: number): string {
  const e = Math.abs(errno);
  return codeByErrno.get(e) ?? LIBBPF_ERRNO[e - LIBBPF_ERRNO_START]?.[0] ?? `E${e}`;
}

/** Numeric value of a symbolic errno (`EPERM` → 1). */
export function errnoValue(code: string): number {
  const v = (constants.errno as Record<string, number>)[code];
  if (v === undefined) throw new TypeError(`unknown errno code ${code}`);
  return v;
}

const describe: Record<string, string> = {
  EPERM: 'operation not permitted',
  EACCES: 'permission denied',
  ENOENT: 'no such file or object',
  EEXIST: 'already exists',
  EINVAL: 'invalid argument',
  EBADF: 'bad or closed handle',
  E2BIG: 'too big',
  ENOSPC: 'no space left (map full?)',
  EBUSY: 'busy',
  ENOTSUP: 'not supported',
  EOPNOTSUPP: 'operation not supported',
  ESRCH: 'no such process or object',
  EMSGSIZE: 'size mismatch',
};

export interface BpfErrorOptions {
  /** libbpf output captured during the operation (the verifier log for a rejected load). */
  readonly log?: string;
  /** What the operation was applied to (a path, program or map name), for the message. */
  readonly target?: string;
  /** Overrides the generated message. */
  readonly detail?: string;
}

export class BpfError extends Error {
  override readonly name = 'BpfError';
  /** The failing operation, e.g. `object.load`, `program.attachCgroup`, `map.update`. */
  readonly operation: string;
  /** Positive errno. */
  readonly errno: number;
  /** Symbolic errno: `EPERM`, `ENOENT`, ... */
  readonly code: string;
  /** libbpf's captured output, when there was any. */
  readonly log?: string;

  constructor(operation: string, errno: number, opts: BpfErrorOptions = {}) {
    const e = Math.abs(errno);
    const code = errnoCode(e);
    const what = opts.target ? ` ${opts.target}` : '';
    const text = opts.detail ?? describe[code] ?? LIBBPF_ERRNO[e - LIBBPF_ERRNO_START]?.[1] ?? `errno ${e}`;
    super(`${operation}${what}: ${code} (${text})`);
    this.operation = operation;
    this.errno = e;
    this.code = code;
    const log = opts.log?.trim();
    if (log) this.log = log;
  }
}

/**
 * Throws a BpfError if the addon returned a negative number (-errno); otherwise
 * returns the value unchanged. `log` is read lazily so successful calls pay nothing.
 */
export function check<T>(operation: string, ret: T | number, target?: string, log?: () => string): T {
  if (typeof ret === 'number' && ret < 0) {
    throw new BpfError(operation, -ret, { target, log: log?.() });
  }
  return ret as T;
}
