// SPIRE unix workload attestor selectors (unix:uid, unix:gid, unix:user,
// unix:group, unix:path, unix:sha256) plus cgroup:<path>, and SPIRE's k8s and
// docker workload attestor selectors for agents in containers (k8s:ns, k8s:sa,
// k8s:pod-uid, k8s:pod-name, k8s:pod-label:<key>:<value>, k8s:container-name;
// docker:id, docker:image_id, docker:label:<key>:<value>), parsed and matched
// against facts the kernel or /proc attests about a process (container facts:
// the cgroup path, plus the operator's metadata directory).
import type { ContainerRuntime } from './container-cgroup.js';
import { canonicalImageId } from './workload-metadata.js';

export type SelectorKind =
  | 'uid'
  | 'gid'
  | 'user'
  | 'group'
  | 'path'
  | 'sha256'
  | 'cgroup'
  | 'k8s-ns'
  | 'k8s-sa'
  | 'k8s-pod-uid'
  | 'k8s-pod-name'
  | 'k8s-pod-label'
  | 'k8s-container-name'
  | 'docker-id'
  | 'docker-image-id'
  | 'docker-label';

export interface ParsedSelector {
  kind: SelectorKind;
  /** The value matched (for labels "key:value"; image ids canonical "sha256:<hex>"). */
  value: string;
  /** Label selectors: the key (a workload has one value per key). */
  key?: string;
  /** The text it was parsed from, for messages. */
  text: string;
}

/** A container process's facts: ids from the cgroup path, the rest from the operator's metadata. */
export interface ContainerFacts {
  runtime: ContainerRuntime;
  /** Container ID (64 hex digits), from the cgroup path. */
  id?: string;
  /** Kubernetes pod UID, from the cgroup path. */
  podUid?: string;
  pod?: { namespace?: string; serviceAccount?: string; name?: string; labels: Record<string, string> };
  /** The container's name in its pod (k8s) and its image and labels. */
  name?: string;
  imageId?: string;
  labels?: Record<string, string>;
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
  /** Present when the cgroup path is a container's or a pod's. */
  container?: ContainerFacts;
}

export type SelectorErrorCode =
  /** None of the selector forms. */
  | 'syntax'
  /** A cgroup or executable path that is not absolute. */
  | 'not_absolute'
  /** A uid or gid that is not a number. */
  | 'not_a_number'
  /** A sha256 selector that is not 64 lowercase hex digits. */
  | 'bad_sha256'
  /** A k8s or docker selector whose value is not what Kubernetes or the runtime would produce. */
  | 'bad_value';

export class SelectorError extends Error {
  constructor(
    readonly code: SelectorErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const POD_UID = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32})$/;
const DOCKER_LABEL_KEY = /^[A-Za-z0-9][-A-Za-z0-9_./]*$/;

const bad = (text: string, why: string) => new SelectorError('bad_value', `selector "${text}": ${why}`);

/** Kubernetes label key: [prefix/]name, name ≤ 63 and a DNS subdomain prefix ≤ 253. */
function isK8sLabelKey(key: string): boolean {
  const slash = key.indexOf('/');
  const name = slash < 0 ? key : key.slice(slash + 1);
  const prefix = slash < 0 ? null : key.slice(0, slash);
  if (prefix !== null && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) return false;
  return name.length <= 63 && LABEL_NAME.test(name);
}

function parseK8s(text: string, kind: string, value: string): ParsedSelector {
  switch (kind) {
    case 'ns':
      if (value.length > 63 || !DNS_LABEL.test(value)) throw bad(text, 'namespace must be a DNS label (lowercase a-z, 0-9, "-", ≤ 63)');
      return { kind: 'k8s-ns', value, text };
    case 'sa':
    case 'pod-name':
      if (value.length > 253 || !DNS_SUBDOMAIN.test(value))
        throw bad(text, `${kind === 'sa' ? 'service account' : 'pod name'} must be a DNS subdomain (lowercase a-z, 0-9, "-", ".", ≤ 253)`);
      return { kind: kind === 'sa' ? 'k8s-sa' : 'k8s-pod-name', value, text };
    case 'container-name':
      if (value.length > 63 || !DNS_LABEL.test(value))
        throw bad(text, 'container name must be a DNS label (lowercase a-z, 0-9, "-", ≤ 63)');
      return { kind: 'k8s-container-name', value, text };
    case 'pod-uid':
      if (!POD_UID.test(value)) throw bad(text, 'pod UID must be a lowercase UUID (8-4-4-4-12 hex digits) or 32 hex digits');
      return { kind: 'k8s-pod-uid', value, text };
    case 'pod-label': {
      // Label keys have no ":", so the first one ends the key (SPIRE: k8s:pod-label:<key>:<value>).
      const at = value.indexOf(':');
      if (at < 0) throw bad(text, 'expected k8s:pod-label:<key>:<value>');
      const key = value.slice(0, at);
      const v = value.slice(at + 1);
      if (!isK8sLabelKey(key)) throw bad(text, `label key "${key}" is not a Kubernetes label key ([prefix/]name, name ≤ 63)`);
      if (v !== '' && (v.length > 63 || !LABEL_NAME.test(v)))
        throw bad(text, `label value "${v}" is not a Kubernetes label value (≤ 63, alphanumerics, "-", "_", ".")`);
      return { kind: 'k8s-pod-label', key, value, text };
    }
    default:
      throw new SelectorError('syntax', `selector "${text}": expected k8s:{ns,sa,pod-uid,pod-name,pod-label,container-name}:<value>`);
  }
}

function parseDocker(text: string, kind: string, value: string): ParsedSelector {
  switch (kind) {
    case 'id':
      if (!/^[0-9a-f]{64}$/.test(value)) throw bad(text, 'container id must be the full 64 lowercase hex digits');
      return { kind: 'docker-id', value, text };
    case 'image_id': {
      const id = canonicalImageId(value);
      if (!id) throw bad(text, 'image id must be sha256:<64 lowercase hex digits> (or the 64 digits alone)');
      return { kind: 'docker-image-id', value: id, text };
    }
    case 'label': {
      const at = value.indexOf(':');
      if (at < 0) throw bad(text, 'expected docker:label:<key>:<value>');
      const key = value.slice(0, at);
      if (key.length > 255 || !DOCKER_LABEL_KEY.test(key))
        throw bad(text, `label key "${key}" must be alphanumerics, "-", "_", ".", "/" (≤ 255, no ":")`);
      return { kind: 'docker-label', key, value, text };
    }
    default:
      throw new SelectorError('syntax', `selector "${text}": expected docker:{id,image_id,label}:<value>`);
  }
}

export function parseSelector(text: string): ParsedSelector {
  if (typeof text !== 'string') throw new SelectorError('syntax', 'a selector must be a string');
  if (text.length > 1024) throw new SelectorError('syntax', `selector "${text.slice(0, 40)}…" is longer than 1024 characters`);
  const runtime = /^(k8s|docker):([a-z_-]+):(.+)$/s.exec(text);
  if (runtime) return runtime[1] === 'k8s' ? parseK8s(text, runtime[2], runtime[3]) : parseDocker(text, runtime[2], runtime[3]);
  if (text.startsWith('k8s:') || text.startsWith('docker:'))
    throw new SelectorError('syntax', `selector "${text}": expected ${text.slice(0, text.indexOf(':'))}:<kind>:<value>`);
  if (/\s/.test(text)) throw new SelectorError('syntax', `selector "${text}": contains whitespace`);
  if (text.startsWith('cgroup:')) {
    const value = text.slice('cgroup:'.length);
    if (!value.startsWith('/')) throw new SelectorError('not_absolute', `selector "${text}": cgroup path must start with "/"`);
    return { kind: 'cgroup', value: value.length > 1 ? value.replace(/\/+$/, '') : value, text };
  }
  const m = /^unix:(uid|gid|user|group|path|sha256):(.+)$/.exec(text);
  if (!m)
    throw new SelectorError(
      'syntax',
      `selector "${text}": expected unix:{uid,gid,user,group,path,sha256}:<value>, cgroup:/<path>, k8s:<kind>:<value> or docker:<kind>:<value>`,
    );
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
    case 'k8s-ns':
      return facts.container?.pod?.namespace === sel.value;
    case 'k8s-sa':
      return facts.container?.pod?.serviceAccount === sel.value;
    case 'k8s-pod-name':
      return facts.container?.pod?.name === sel.value;
    case 'k8s-pod-uid':
      return facts.container?.podUid === sel.value;
    case 'k8s-pod-label':
      return labelIs(facts.container?.pod?.labels, sel);
    case 'k8s-container-name':
      return facts.container?.podUid !== undefined && facts.container.name === sel.value;
    case 'docker-id':
      return facts.container?.id === sel.value;
    case 'docker-image-id':
      return facts.container?.imageId === sel.value;
    case 'docker-label':
      return labelIs(facts.container?.labels, sel);
  }
}

function labelIs(labels: Record<string, string> | undefined, sel: ParsedSelector): boolean {
  const key = sel.key!;
  return labels !== undefined && Object.hasOwn(labels, key) && `${key}:${labels[key]}` === sel.value;
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
    case 'k8s-ns':
    case 'k8s-sa':
    case 'k8s-pod-name':
    case 'k8s-pod-uid':
    case 'k8s-container-name':
    case 'docker-id':
    case 'docker-image-id':
      return a.value === b.value;
    case 'k8s-pod-label':
    case 'docker-label':
      // One value per key: the same key with different values excludes.
      return a.key !== b.key || a.value === b.value;
    case 'cgroup':
      return cgroupWithin(a.value, b.value) || cgroupWithin(b.value, a.value);
    default:
      return true; // a process has many groups
  }
}
