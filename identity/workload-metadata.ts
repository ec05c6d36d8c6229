// What the kernel cannot attest about a container (its pod's namespace,
// service account and labels; its image and labels) comes from a directory the
// operator provides, keyed by what the kernel does attest (the pod UID and
// container ID in the cgroup path, container-cgroup.ts):
//
//   <dir>/pods/<pod-uid>.json        {"namespace", "service_account", "name", "labels": {k: v}}
//   <dir>/containers/<id>.json       {"name", "image_id", "labels": {k: v}}
//
// Written by the DaemonSet's metadata sidecar or a runtime hook (docs/deploy.md,
// "Container identity"); no kube API server is needed. The directory must be
// writable by root only: whoever writes it names identities. Files are
// bounded (size, label count, string lengths) and read as plain JSON; a file
// that is missing, too large or malformed contributes nothing, so selectors
// needing it do not match (unknown identity → deny), never a partial identity.
import { statSync } from 'node:fs';
import { isAbsolute, normalize } from 'node:path';
import { open } from 'node:fs/promises';

/** Default metadata directory (the enforcer's runtime directory, hostPath-mounted in the DaemonSet). */
export const DEFAULT_WORKLOAD_DIR = '/run/lilith/workloads';

export type WorkloadDirErrorCode =
  /** Not an absolute, normalized path of a sane length. */
  | 'WORKLOAD_DIR_PATH'
  /** Exists but is not a directory. */
  | 'WORKLOAD_DIR_NOT_DIRECTORY'
  /** Writable by someone other than root (or the enforcer's own user): they could name identities. */
  | 'WORKLOAD_DIR_UNSAFE';

export class WorkloadDirError extends Error {
  override readonly name = 'WorkloadDirError';
  constructor(
    readonly code: WorkloadDirErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Checks the metadata directory's path: absolute, normalized, no NUL, at most 1024 bytes. */
export function checkWorkloadDirPath(dir: string): void {
  const normalized = isAbsolute(dir) && normalize(dir) === dir && (dir === '/' || !dir.endsWith('/'));
  if (dir.length === 0 || dir.length > 1024 || dir.includes('\0') || !normalized)
    throw new WorkloadDirError(
      'WORKLOAD_DIR_PATH',
      `workload metadata directory ${JSON.stringify(dir)} must be an absolute, normalized path (no "..", "//" or trailing "/") of at most 1024 bytes`,
    );
}

/**
 * Refuses a metadata directory whose files someone other than root (or `ownerUid`, the
 * enforcer's user) could write: the directory and its pods/ and containers/ must be
 * directories owned by one of them and not group- or world-writable. A directory that does
 * not exist (yet) is accepted: with no metadata, selectors needing it do not match.
 */
export function checkWorkloadDir(dir: string, ownerUid = process.getuid?.() ?? 0): void {
  checkWorkloadDirPath(dir);
  for (const d of [dir, `${dir}/pods`, `${dir}/containers`]) {
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(d);
    } catch {
      continue; // absent: contributes nothing
    }
    if (!st.isDirectory()) throw new WorkloadDirError('WORKLOAD_DIR_NOT_DIRECTORY', `workload metadata path ${d} is not a directory`);
    if ((st.uid !== 0 && st.uid !== ownerUid) || (st.mode & 0o022) !== 0)
      throw new WorkloadDirError(
        'WORKLOAD_DIR_UNSAFE',
        `workload metadata directory ${d} is writable by others (owner uid ${st.uid}, mode ${(st.mode & 0o777).toString(8)}): ` +
          'whoever writes it names identities; make it owned by root and not group/world-writable (chmod 755)',
      );
  }
}

const MAX_FILE_BYTES = 64 * 1024;
const MAX_LABELS = 256;
const MAX_KEY = 317; // Kubernetes: 253-byte prefix + "/" + 63-byte name
const MAX_VALUE = 4096;

export interface PodMetadata {
  namespace?: string;
  serviceAccount?: string;
  name?: string;
  labels: Record<string, string>;
}

export interface ContainerMetadata {
  name?: string;
  /** Canonical "sha256:<64 hex>". */
  imageId?: string;
  labels: Record<string, string>;
}

/** Image IDs as docker ("sha256:<hex>") and podman ("<hex>") print them, in one form; null if neither. */
export function canonicalImageId(id: string): string | null {
  const m = /^(?:sha256:)?([0-9a-f]{64})$/.exec(id);
  return m ? `sha256:${m[1]}` : null;
}

async function readBoundedJson(path: string): Promise<Record<string, unknown> | null> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch {
    return null;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size > MAX_FILE_BYTES) return null;
    const buf = Buffer.alloc(MAX_FILE_BYTES + 1);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    if (bytesRead > MAX_FILE_BYTES) return null;
    const v: unknown = JSON.parse(buf.subarray(0, bytesRead).toString('utf8'));
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  } finally {
    await fh.close();
  }
}

const str = (v: unknown, max = 253): string | undefined => (typeof v === 'string' && v.length > 0 && v.length <= max ? v : undefined);

/** Labels as a string → string map, or null when any entry is out of shape (the whole file is then ignored). */
function labelsOf(v: unknown): Record<string, string> | null {
  if (v === undefined) return {};
  if (!v || typeof v !== 'object' || Array.isArray(v)) return null;
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length > MAX_LABELS) return null;
  for (const [k, val] of entries)
    if (k.length === 0 || k.length > MAX_KEY || typeof val !== 'string' || val.length > MAX_VALUE) return null;
  // fromEntries defines own properties: a "__proto__" key stays a key.
  return Object.fromEntries(entries) as Record<string, string>;
}

export async function readPodMetadata(dir: string, podUid: string): Promise<PodMetadata | null> {
  if (!/^[0-9a-f-]{32,36}$/.test(podUid)) return null;
  const j = await readBoundedJson(`${dir}/pods/${podUid}.json`);
  if (!j) return null;
  const labels = labelsOf(j.labels);
  if (!labels) return null;
  return { namespace: str(j.namespace, 63), serviceAccount: str(j.service_account), name: str(j.name), labels };
}

export async function readContainerMetadata(dir: string, id: string): Promise<ContainerMetadata | null> {
  if (!/^[0-9a-f]{64}$/.test(id)) return null;
  const j = await readBoundedJson(`${dir}/containers/${id}.json`);
  if (!j) return null;
  const labels = labelsOf(j.labels);
  if (!labels) return null;
  const imageId = typeof j.image_id === 'string' ? canonicalImageId(j.image_id) : null;
  return { name: str(j.name, 63), imageId: imageId ?? undefined, labels };
}
