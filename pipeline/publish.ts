// Publishing capsules to a branch of a git repository with isomorphic-git, over
// smart HTTP(S) or directly into a local repository. Layout of the branch
// (default `capsules`), one commit per published capsule:
//   capsule.json   the signed envelope, byte for byte what `lilith sign` wrote
//   CAPSULE.md     an unsigned human summary (watermark, digest, commit); never trusted
// Enforcers read capsule.json at the branch tip.
import fs from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import git from 'isomorphic-git';
import http from 'isomorphic-git/http/node';
import { peekCapsule, type CapsulePayload } from '../capsule/index.js';
import { withHeadShim } from '../capsule/git/head-shim.js';

export const DEFAULT_BRANCH = 'capsules';
export const CAPSULE_PATH = 'capsule.json';
export const SUMMARY_PATH = 'CAPSULE.md';

/** Why the remote refused this capsule (PublishRefusedError). */
export type PublishRefusedCode =
  /** The git server refused the push. */
  | 'push_refused'
  /** The capsule's watermark is not above the published one. */
  | 'watermark_not_above'
  /** Another publish moved the branch meanwhile. */
  | 'branch_moved';

export type PublishErrorCode = 'not_a_repository' | PublishRefusedCode;

export class PublishError extends Error {
  constructor(
    readonly code: PublishErrorCode,
    message: string,
  ) {
    super(message);
  }
}
/** The remote is fine but this capsule must not be published there (watermark order, concurrent publish). */
export class PublishRefusedError extends PublishError {
  declare readonly code: PublishRefusedCode;
  constructor(code: PublishRefusedCode, message: string) {
    super(code, message);
  }
}

export interface RepoTarget {
  /** http(s) URL, or a local repository path (bare or with a working tree). */
  repo: string;
  branch?: string;
}

export interface PublishedCapsule {
  commit: string;
  watermark: number;
  digest: string;
}

export function isUrl(repo: string): boolean {
  return /^https?:\/\//i.test(repo);
}

function httpFor(branch: string) {
  // isomorphic-git's fetch needs the remote HEAD resolvable even for a single-branch fetch.
  return withHeadShim(http as never, `refs/heads/${branch}`) as unknown as typeof http;
}

async function localGitdir(repo: string): Promise<string> {
  const dotgit = join(repo, '.git');
  if ((await stat(dotgit).catch(() => null))?.isDirectory()) return dotgit;
  if ((await stat(join(repo, 'HEAD')).catch(() => null))?.isFile() && (await stat(join(repo, 'objects')).catch(() => null))?.isDirectory())
    return repo;
  throw new PublishError('not_a_repository', `${repo} is not a git repository (no .git directory, not a bare repository)`);
}

interface Opened {
  gitdir: string;
  /** Tip of the branch, null when it does not exist yet. */
  tip: string | null;
  cleanup(): Promise<void>;
  push?(): Promise<void>;
}

/** Opens the target: a local gitdir as is, or a temp clone holding the branch tip (depth 1). */
async function open(target: RepoTarget, forPush: boolean): Promise<Opened> {
  const branch = target.branch ?? DEFAULT_BRANCH;
  const ref = `refs/heads/${branch}`;
  if (!isUrl(target.repo)) {
    const gitdir = await localGitdir(target.repo);
    const tip = await git.resolveRef({ fs, gitdir, ref }).catch(() => null);
    return { gitdir, tip, cleanup: async () => {} };
  }
  const dir = await mkdtemp(join(tmpdir(), 'lilith-publish-'));
  const cleanup = () => rm(dir, { recursive: true, force: true });
  try {
    const h = httpFor(branch);
    await git.init({ fs, dir, defaultBranch: branch });
    await git.addRemote({ fs, dir, remote: 'origin', url: target.repo });
    const refs = await git.listServerRefs({ http: h, url: target.repo, prefix: ref });
    const remoteTip = refs.find((r) => r.ref === ref)?.oid ?? null;
    if (remoteTip) {
      await git.fetch({ fs, http: h, dir, remote: 'origin', ref: branch, remoteRef: branch, singleBranch: true, depth: 1, tags: false });
      await git.writeRef({ fs, dir, ref, value: remoteTip, force: true });
    }
    const opened: Opened = { gitdir: join(dir, '.git'), tip: remoteTip, cleanup };
    if (forPush) {
      opened.push = async () => {
        const res = await git.push({ fs, http: h, dir, remote: 'origin', ref: branch, remoteRef: branch });
        if (!res.ok)
          throw new PublishRefusedError(
            'push_refused',
            `push to ${target.repo} ${branch} was refused: ${res.error ?? JSON.stringify(res.refs)}`,
          );
      };
    }
    return opened;
  } catch (err) {
    await cleanup();
    throw err;
  }
}

async function readTipCapsule(gitdir: string, tip: string): Promise<Uint8Array | null> {
  try {
    const { blob } = await git.readBlob({ fs, gitdir, oid: tip, filepath: CAPSULE_PATH });
    return blob;
  } catch {
    return null;
  }
}

/** The watermark of the capsule at the branch tip (unverified), or null when nothing is published. */
export async function latestPublished(target: RepoTarget): Promise<{ watermark: number; digest: string; commit: string } | null> {
  const o = await open(target, false);
  try {
    if (!o.tip) return null;
    const bytes = await readTipCapsule(o.gitdir, o.tip);
    if (!bytes) return null;
    const { payload, digest } = peekCapsule(bytes);
    return { watermark: payload.watermark, digest, commit: o.tip };
  } finally {
    await o.cleanup();
  }
}

function summary(payload: CapsulePayload, digest: string): string {
  return [
    `# Capsule ${payload.watermark}`,
    '',
    'Unsigned summary; the signed capsule is capsule.json.',
    '',
    `- watermark: ${payload.watermark}`,
    `- payload sha256: ${digest}`,
    `- created: ${payload.created_at}`,
    `- expires: ${payload.expires_at}`,
    `- source commit: ${payload.source_commit ?? '(none)'}`,
    `- proof report sha256: ${payload.proof_digest ?? '(none)'}`,
    `- policies: ${Object.keys(payload.policies).sort().join(', ')}`,
    '',
  ].join('\n');
}

/**
 * Commits the capsule as capsule.json on top of the branch and pushes it.
 * Refuses a watermark not above the published one (enforcers would refuse it);
 * publishing the identical capsule again is a no-op.
 */
export async function publishCapsule(
  bytes: Uint8Array,
  target: RepoTarget,
  opts: { now?: Date; author?: { name: string; email: string } } = {},
): Promise<PublishedCapsule & { unchanged: boolean }> {
  const { payload, digest } = peekCapsule(bytes);
  const branch = target.branch ?? DEFAULT_BRANCH;
  const o = await open(target, true);
  try {
    if (o.tip) {
      const current = await readTipCapsule(o.gitdir, o.tip);
      if (current) {
        const published = peekCapsule(current);
        if (published.payload.watermark === payload.watermark && published.digest === digest) {
          return { commit: o.tip, watermark: payload.watermark, digest, unchanged: true };
        }
        if (payload.watermark <= published.payload.watermark) {
          throw new PublishRefusedError(
            'watermark_not_above',
            `watermark ${payload.watermark} is not above the published watermark ${published.payload.watermark} on ${branch}; sign again with --watermark auto`,
          );
        }
      }
    }
    const gitdir = o.gitdir;
    const capsuleOid = await git.writeBlob({ fs, gitdir, blob: bytes });
    const summaryOid = await git.writeBlob({ fs, gitdir, blob: Buffer.from(summary(payload, digest)) });
    const tree = await git.writeTree({
      fs,
      gitdir,
      tree: [
        { mode: '100644', path: SUMMARY_PATH, oid: summaryOid, type: 'blob' },
        { mode: '100644', path: CAPSULE_PATH, oid: capsuleOid, type: 'blob' },
      ],
    });
    const now = opts.now ?? new Date();
    const author = {
      name: opts.author?.name ?? process.env.GIT_AUTHOR_NAME ?? 'lilith publish',
      email: opts.author?.email ?? process.env.GIT_AUTHOR_EMAIL ?? 'lilith@localhost',
      timestamp: Math.floor(now.getTime() / 1000),
      timezoneOffset: 0,
    };
    const message = `capsule ${payload.watermark}${payload.source_commit ? ` from ${payload.source_commit}` : ''}\n\npayload sha256 ${digest}\n`;
    const commit = await git.writeCommit({
      fs,
      gitdir,
      commit: { message, tree, parent: o.tip ? [o.tip] : [], author, committer: author },
    });
    if (o.push) {
      await git.writeRef({ fs, gitdir, ref: `refs/heads/${branch}`, value: commit, force: true });
      await o.push();
    } else {
      // Local repository: move the branch only if nobody moved it meanwhile.
      const now = await git.resolveRef({ fs, gitdir, ref: `refs/heads/${branch}` }).catch(() => null);
      if (now !== o.tip) throw new PublishRefusedError('branch_moved', `${branch} moved while publishing (now ${now}); try again`);
      await git.writeRef({ fs, gitdir, ref: `refs/heads/${branch}`, value: commit, force: true });
    }
    return { commit, watermark: payload.watermark, digest, unchanged: false };
  } finally {
    await o.cleanup();
  }
}
