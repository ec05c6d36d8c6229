// Reads a policy directory as it is at a git ref (isomorphic-git: resolveRef,
// readTree, readBlob) — no checkout, so base and head can be read side by side.
import * as fs from 'node:fs';
import git from 'isomorphic-git';
import { policySourceFromFiles, type PolicySource } from '../policy-source.js';
import { APPROVALS_DIR, parseApprovalFile, type Approval } from './approvals.js';

export type GitSourceErrorCode =
  /** The git ref does not resolve. */
  | 'bad_ref'
  /** ref^N names a parent the commit does not have. */
  | 'no_parent'
  /** The policy directory is not in that commit. */
  | 'no_directory'
  /** A file in that commit cannot be read. */
  | 'unreadable';

export class GitSourceError extends Error {
  constructor(
    readonly code: GitSourceErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Resolves REF, REF^, REF~N (branch, tag, remote branch, full or short commit id). */
export async function resolveCommit(dir: string, ref: string): Promise<string> {
  const m = /^(.*?)((?:[~^]\d*)*)$/.exec(ref)!;
  const baseRef = m[1];
  let oid: string;
  try {
    if (/^[0-9a-f]{40}$/i.test(baseRef)) oid = baseRef.toLowerCase();
    else {
      try {
        oid = await git.resolveRef({ fs, dir, ref: baseRef });
      } catch (err) {
        if (/^[0-9a-f]{4,39}$/i.test(baseRef)) oid = await git.expandOid({ fs, dir, oid: baseRef.toLowerCase() });
        else throw err;
      }
    }
    // Annotated tags point at tag objects; peel to the commit.
    for (;;) {
      const obj = await git.readObject({ fs, dir, oid });
      if (obj.type === 'tag') oid = (obj.object as { object: string }).object;
      else break;
    }
  } catch (err) {
    throw new GitSourceError('bad_ref', `cannot resolve git ref "${baseRef}" in ${dir}: ${(err as Error).message}`);
  }
  for (const step of m[2].match(/[~^]\d*/g) ?? []) {
    const n = step.length > 1 ? Number(step.slice(1)) : 1;
    if (step[0] === '~') {
      for (let i = 0; i < n; i++) oid = await parent(dir, oid, 0, ref);
    } else if (n > 0) oid = await parent(dir, oid, n - 1, ref);
  }
  return oid;
}

async function parent(dir: string, oid: string, index: number, ref: string): Promise<string> {
  const { commit } = await git.readCommit({ fs, dir, oid });
  const p = commit.parent[index];
  if (!p) throw new GitSourceError('no_parent', `git ref "${ref}": commit ${oid.slice(0, 12)} has no parent #${index + 1}`);
  return p;
}

export interface GitPolicies {
  commit: string;
  source: PolicySource;
  approvals: Approval[];
}

/** The policy files under `path` at `ref`: top-level files, invariants/*.cedar and approvals/*.json. */
export async function readPoliciesAtRef(dir: string, ref: string, path = 'policies'): Promise<GitPolicies> {
  const commit = await resolveCommit(dir, ref);
  const files = new Map<string, string>();
  const approvals: Approval[] = [];
  const cleanPath = path.replace(/^\.?\/+|\/+$/g, '');
  let entries;
  try {
    entries = (await git.readTree({ fs, dir, oid: commit, filepath: cleanPath || undefined })).tree;
  } catch (err) {
    throw new GitSourceError('no_directory', `${ref} (${commit.slice(0, 12)}): no directory "${cleanPath}": ${(err as Error).message}`);
  }
  const blob = async (oid: string) => new TextDecoder().decode((await git.readBlob({ fs, dir, oid })).blob);
  for (const e of entries) {
    if (e.type === 'blob') files.set(e.path, await blob(e.oid));
    else if (e.type === 'tree' && (e.path === 'invariants' || e.path === APPROVALS_DIR)) {
      const sub = (await git.readTree({ fs, dir, oid: e.oid })).tree;
      for (const s of sub) {
        if (s.type !== 'blob') continue;
        const rel = `${e.path}/${s.path}`;
        if (e.path === APPROVALS_DIR) {
          if (s.path.endsWith('.json')) approvals.push(...parseApprovalFile(`${cleanPath}/${rel}`, await blob(s.oid)));
        } else files.set(rel, await blob(s.oid));
      }
    }
  }
  try {
    return { commit, source: policySourceFromFiles(files), approvals };
  } catch (err) {
    throw new GitSourceError('unreadable', `${ref} (${commit.slice(0, 12)}) ${cleanPath}/: ${(err as Error).message}`);
  }
}

/** Approval files of a policy directory on disk. */
export async function readApprovalsDir(policyDir: string): Promise<Approval[]> {
  const dir = `${policyDir}/${APPROVALS_DIR}`;
  let names: string[];
  try {
    names = await fs.promises.readdir(dir);
  } catch {
    return [];
  }
  const out: Approval[] = [];
  for (const n of names.sort())
    if (n.endsWith('.json')) out.push(...parseApprovalFile(`${dir}/${n}`, await fs.promises.readFile(`${dir}/${n}`, 'utf8')));
  return out;
}
