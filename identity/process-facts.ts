// Reads what /proc attests about a process: ids, executable and its hash,
// cgroup, and for a process in a container the container's facts (ids from the
// cgroup path, the rest from the operator's metadata directory). The kernel path
// (bpf) supplies uid/gid/cgroup at connect time; this fills in the executable
// facts and names.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, readlink } from 'node:fs/promises';
import type { ContainerFacts, ProcessFacts } from './selectors.js';
import { parseContainerCgroup } from './container-cgroup.js';
import { DEFAULT_WORKLOAD_DIR, readContainerMetadata, readPodMetadata } from './workload-metadata.js';

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function parseStatusIds(status: string, field: 'Uid' | 'Gid'): number | undefined {
  const m = new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(status);
  return m ? Number(m[1]) : undefined;
}

async function namesFromDb(file: string): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  try {
    for (const line of (await readFile(file, 'utf8')).split('\n')) {
      const [name, , id] = line.split(':');
      if (name && id !== undefined && /^\d+$/.test(id)) out.set(Number(id), name);
    }
  } catch {
    // No passwd/group database: names stay unknown and user/group selectors do not match.
  }
  return out;
}

// Executable hashes by inode (dev, ino, size, mtime): hashing node (~100 MB) on
// every connection would dominate, and concurrent first connections from one new
// executable share a single hash in flight instead of each reading the file.
const hashCache = new Map<string, Promise<string>>();
let hashesStarted = 0;

/** How many executable hashes this process has started (each reads a whole file): tests pin that concurrent first connections share one. */
export function exeHashesStarted(): number {
  return hashesStarted;
}

async function exeSha256(pid: number): Promise<string | undefined> {
  try {
    const { stat } = await import('node:fs/promises');
    // /proc/<pid>/exe opens the very inode the process runs, even if the path was replaced.
    const st = await stat(`/proc/${pid}/exe`);
    const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
    let digest = hashCache.get(key);
    if (!digest) {
      if (hashCache.size >= 1024) hashCache.delete(hashCache.keys().next().value!);
      hashesStarted++;
      digest = sha256File(`/proc/${pid}/exe`);
      hashCache.set(key, digest);
      // A failed read (the process exited mid-hash) is not remembered.
      digest.catch(() => hashCache.get(key) === digest && hashCache.delete(key));
    }
    return await digest;
  } catch {
    return undefined;
  }
}

export interface ProcessFactsOptions {
  /** The operator's container metadata directory (workload-metadata.ts). @default /run/lilith/workloads */
  workloadDir?: string;
}

/** Container facts for a cgroup path: undefined when it is no container's or pod's. */
export async function containerFacts(cgroupPath: string, workloadDir = DEFAULT_WORKLOAD_DIR): Promise<ContainerFacts | undefined> {
  const cg = parseContainerCgroup(cgroupPath);
  if (!cg) return undefined;
  const [pod, ctr] = await Promise.all([
    cg.podUid ? readPodMetadata(workloadDir, cg.podUid) : null,
    cg.id ? readContainerMetadata(workloadDir, cg.id) : null,
  ]);
  return {
    ...cg,
    ...(pod ? { pod } : {}),
    ...(ctr ? { name: ctr.name, imageId: ctr.imageId, labels: ctr.labels } : {}),
  };
}

/** Facts about `pid`; throws if the process does not exist. */
export async function readProcessFacts(pid: number, opts: ProcessFactsOptions = {}): Promise<ProcessFacts> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const uid = parseStatusIds(status, 'Uid');
  const gid = parseStatusIds(status, 'Gid');
  const groupsLine = /^Groups:[ \t]*(.*)$/m.exec(status)?.[1] ?? '';
  const gids = [...new Set([gid, ...groupsLine.split(/\s+/).filter(Boolean).map(Number)].filter((g): g is number => g !== undefined))];
  let exePath: string | undefined;
  try {
    exePath = await readlink(`/proc/${pid}/exe`);
  } catch {
    exePath = undefined;
  }
  let cgroupPath: string | undefined;
  try {
    const cg = await readFile(`/proc/${pid}/cgroup`, 'utf8');
    cgroupPath = /^0::(.*)$/m.exec(cg)?.[1]?.trim();
  } catch {
    cgroupPath = undefined;
  }
  const [users, groups] = await Promise.all([namesFromDb('/etc/passwd'), namesFromDb('/etc/group')]);
  return {
    pid,
    uid,
    gid,
    gids,
    user: uid !== undefined ? users.get(uid) : undefined,
    groups: gids.map((g) => groups.get(g)).filter((n): n is string => n !== undefined),
    exePath,
    exeSha256: exePath ? await exeSha256(pid) : undefined,
    cgroupPath,
    container: cgroupPath ? await containerFacts(cgroupPath, opts.workloadDir) : undefined,
  };
}
