// SPIRE unix workload attestor selectors (unix:uid, unix:gid, unix:user,
// unix:group, unix:path, unix:sha256) plus cgroup:<path>, parsed and matched
// against facts the kernel or /proc attests about a process.

export type SelectorKind = 'uid' | 'gid' | 'user' | 'group' | 'path' | 'sha256' | 'cgroup';

export interface ParsedSelector {
  kind: SelectorKind;
  value: string;
  /** The text it was parsed from, for messages. */
  text: string;
}

/** What is known about a process, each fact optional when it could not be attested. */
export interface ProcessFacts {
  pid: number;
  uid?: number;
  gid?: number;
  /** All group ids (primary and supplementary). */
  gids?: number[];
  user?: string;
  groups?: string[];
  exePath?: string;
  exeSha256?: string;
  /** cgroup v2 path relative to the cgroup root, starting with "/". */
  cgroupPath?: string;
}

export type SelectorErrorCode =
  /** Neither unix:<kind>:<value> nor cgroup:/<path>. */
  | 'syntax'
  /** A cgroup or executable path that is not absolute. */
  | 'not_absolute'
  /** A uid or gid that is not a number. */
  | 'not_a_number'
  /** A sha256 selector that is not 64 lowercase hex digits. */
  | 'bad_sha256';

export class SelectorError extends Error {
  constructor(
    readonly code: SelectorErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export function parseSelector(text: string): ParsedSelector {
  if (text.startsWith('cgroup:')) {
    const value = text.slice('cgroup:'.length);
    if (!value.startsWith('/')) throw new SelectorError('not_absolute', `selector "${text}": cgroup path must start with "/"`);
    return { kind: 'cgroup', value: value.length > 1 ? value.replace(/\/+$/, '') : value, text };
  }
  const m = /^unix:(uid|gid|user|group|path|sha256):(.+)$/.exec(text);
  if (!m) throw new SelectorError('syntax', `selector "${text}": expected unix:{uid,gid,user,group,path,sha256}:<value> or cgroup:/<path>`);
  const kind = m[1] as SelectorKind;
  const value = m[2];
  if ((kind === 'uid' || kind === 'gid') && !/^\d+$/.test(value))
    throw new SelectorError('not_a_number', `selector "${text}": ${kind} must be a number`);
  if (kind === 'sha256' && !/^[0-9a-f]{64}$/.test(value))
    throw new SelectorError('bad_sha256', `selector "${text}": sha256 must be 64 lowercase hex digits`);
  if (kind === 'path' && !value.startsWith('/')) throw new SelectorError('not_absolute', `selector "${text}": path must be absolute`);
  return { kind, value, text };
}

/** A cgroup selector matches its cgroup and every cgroup below it. */
export function cgroupWithin(path: string, root: string): boolean {
  return root === '/' || path === root || path.startsWith(root + '/');
}

export function selectorMatches(sel: ParsedSelector, facts: ProcessFacts): boolean {
  switch (sel.kind) {
    case 'uid':
      return facts.uid !== undefined && facts.uid === Number(sel.value);
    case 'gid':
      return (facts.gids ?? (facts.gid !== undefined ? [facts.gid] : [])).includes(Number(sel.value));
    case 'user':
      return facts.user === sel.value;
    case 'group':
      return (facts.groups ?? []).includes(sel.value);
    case 'path':
      return facts.exePath === sel.value;
    case 'sha256':
      return facts.exeSha256 === sel.value;
    case 'cgroup':
      return facts.cgroupPath !== undefined && cgroupWithin(facts.cgroupPath, sel.value);
  }
}

/** Does selector `a` imply selector `b` (every process matching a matches b)? */
export function selectorImplies(a: ParsedSelector, b: ParsedSelector): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === 'cgroup') return cgroupWithin(a.value, b.value);
  return a.value === b.value;
}

/** Can one process match both? Only single-valued facts with different values exclude each other. */
export function selectorsCompatible(a: ParsedSelector, b: ParsedSelector): boolean {
  if (a.kind !== b.kind) return true;
  switch (a.kind) {
    case 'uid':
    case 'user':
    case 'path':
    case 'sha256':
      return a.value === b.value;
    case 'cgroup':
      return cgroupWithin(a.value, b.value) || cgroupWithin(b.value, a.value);
    default:
      return true; // a process has many groups
  }
}
