// Publishing capsules to a branch of a git repository with isomorphic-git, over
// smart HTTP(S) or directly into a local repository. Layout of the branch
// (default `capsules`), one commit per published capsule:
//   capsule.json   the signed envelope, byte for byte what `lilith sign` wrote
//   CAPSULE.md     an unsigned human summary (watermark, digest, commit); never trusted
//   trust/N.json   in-band trust rotations (version N, signed by the old and new root)
//   reset.json     a root-signed watermark-floor reset (recovery from a fast-forward)
//   timestamp.json the timestamp role's short-lived "capsule D is current" statement
// Enforcers read capsule.json at the branch tip, and the documents beside it. A new
// capsule carries trust/ and reset.json over from the tip; a timestamp names one
// capsule, so it is not carried over.
import fs from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import git from 'isomorphic-git';
import type http from 'isomorphic-git/http/node';
import {
  CapsuleError,
  CAPSULE_PATH,
  decodeEnvelope,
  documentKindOf,
  isCapsuleError,
  parseTimestampPayload,
  parseTrust,
  peekCapsule,
  RESET_PATH,
  rotationFileName,
  SUMMARY_PATH,
  TIMESTAMP_PATH,
  TIMESTAMP_PAYLOAD_TYPE,
  TRUST_DIR,
  TRUST_PAYLOAD_TYPE,
  verifyCapsuleSignatures,
  verifyReset,
  verifyTimestamp,
  verifyTrustUpdate,
  type CapsulePayload,
  type Trust,
} from '../capsule/index.js';
import { withHeadShim } from '../capsule/git/head-shim.js';
import { limitedHttp } from '../capsule/git/http-client.js';
import { withPackLimits } from '../capsule/git/pack-limits.js';

export const DEFAULT_BRANCH = 'capsules';
export { CAPSULE_PATH, SUMMARY_PATH, TRUST_DIR, RESET_PATH, TIMESTAMP_PATH };

type TreeEntry = { mode: string; path: string; oid: string; type: 'blob' | 'tree' | 'commit' };

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

/** How many commits back publish looks for a capsule that verifies when the tip does not. */
export const MAX_HISTORY_SEARCH = 50;
const MAX_OBJECT_BYTES = 16 * 1024 * 1024;

function httpFor(branch: string) {
  // The branch is written by whoever holds the git transport: the same pack bounds as the
  // enforcer's (a compressible bomb on the tip must not take CI down either).
  const limited = withPackLimits(limitedHttp({ timeoutMs: 120_000, maxBytes: 256 * 1024 * 1024 }), {
    maxObjectBytes: MAX_OBJECT_BYTES,
    maxTotalBytes: 64 * MAX_OBJECT_BYTES,
    maxObjects: 16 * MAX_HISTORY_SEARCH,
  });
  // isomorphic-git's fetch needs the remote HEAD resolvable even for a single-branch fetch.
  return withHeadShim(limited, `refs/heads/${branch}`) as unknown as typeof http;
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
  /** Makes up to `depth` commits of history below the tip readable (remote: fetch deeper). */
  deepen(depth: number): Promise<void>;
}

/** Opens the target: a local gitdir as is, or a temp clone holding the branch tip (depth 1). */
async function open(target: RepoTarget, forPush: boolean): Promise<Opened> {
  const branch = target.branch ?? DEFAULT_BRANCH;
  const ref = `refs/heads/${branch}`;
  if (!isUrl(target.repo)) {
    const gitdir = await localGitdir(target.repo);
    const tip = await git.resolveRef({ fs, gitdir, ref }).catch(() => null);
    return { gitdir, tip, cleanup: async () => {}, deepen: async () => {} };
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
    const deepen = async (depth: number) => {
      await git.fetch({ fs, http: h, dir, remote: 'origin', ref: branch, remoteRef: branch, singleBranch: true, depth, tags: false });
    };
    const opened: Opened = { gitdir: join(dir, '.git'), tip: remoteTip, cleanup, deepen };
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

async function readBlobAt(gitdir: string, commit: string, filepath: string): Promise<Uint8Array | null> {
  try {
    const { blob } = await git.readBlob({ fs, gitdir, oid: commit, filepath });
    return blob;
  } catch {
    return null;
  }
}

function readCapsuleAt(gitdir: string, commit: string): Promise<Uint8Array | null> {
  return readBlobAt(gitdir, commit, CAPSULE_PATH);
}

/** A published capsule whose watermark can be relied on. */
export interface PublishedInfo {
  watermark: number;
  digest: string;
  commit: string;
  /** Newer commits whose capsule.json did not verify (reported, never trusted). */
  skipped: { commit: string; reason: string }[];
}

/**
 * The newest capsule on the branch whose watermark can be trusted. With `trust`, commits
 * whose capsule does not verify against it are skipped (and reported): an unsigned tip
 * claiming watermark 2^53−1 must neither freeze publishing nor make CI sign above it.
 * Searches at most MAX_HISTORY_SEARCH commits. Without `trust` the tip is taken as is.
 */
async function findPublished(o: Opened, trust: Trust | null): Promise<PublishedInfo | null> {
  if (!o.tip) return null;
  const skipped: PublishedInfo['skipped'] = [];
  const check = (bytes: Uint8Array | null, commit: string): PublishedInfo | null => {
    if (!bytes) {
      skipped.push({ commit, reason: `no readable ${CAPSULE_PATH}` });
      return null;
    }
    try {
      const { payload, digest } = trust ? verifyCapsuleSignatures(bytes, trust) : peekCapsule(bytes);
      return { watermark: payload.watermark, digest, commit, skipped };
    } catch (err) {
      if (!isCapsuleError(err)) throw err;
      skipped.push({ commit, reason: `${err.code}: ${err.message}` });
      return null;
    }
  };
  // A root-signed reset on the branch that undoes the capsule found lowers the watermark
  // publish and `sign --watermark auto` count from, as it lowers the enforcers' floor.
  const afterReset = async (found: PublishedInfo | null): Promise<PublishedInfo | null> => {
    if (!found || !trust || !o.tip) return found;
    const bytes = await readBlobAt(o.gitdir, o.tip, RESET_PATH);
    if (!bytes) return found;
    try {
      const r = verifyReset(bytes, trust, new Date()).payload;
      return r.undoes_digest === found.digest ? { ...found, watermark: r.watermark, digest: r.digest } : found;
    } catch (err) {
      if (!isCapsuleError(err)) throw err;
      skipped.push({ commit: o.tip, reason: `${RESET_PATH} does not verify: ${err.code}: ${err.message}` });
      return found;
    }
  };
  const atTip = check(await readCapsuleAt(o.gitdir, o.tip), o.tip);
  if (atTip || !trust) return afterReset(atTip);
  await o.deepen(MAX_HISTORY_SEARCH);
  const commits = await git.log({ fs, gitdir: o.gitdir, ref: o.tip, depth: MAX_HISTORY_SEARCH }).catch(() => []);
  for (const c of commits.slice(1)) {
    const found = check(await readCapsuleAt(o.gitdir, c.oid), c.oid);
    if (found) return afterReset(found);
  }
  return { watermark: -1, digest: '', commit: '', skipped };
}

/**
 * The published watermark (see findPublished), or null when nothing is published.
 * watermark −1: commits exist but none of the last MAX_HISTORY_SEARCH verifies.
 */
export async function latestPublished(target: RepoTarget, trust: Trust | null = null): Promise<PublishedInfo | null> {
  const o = await open(target, false);
  try {
    return await findPublished(o, trust);
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
  opts: { now?: Date; author?: { name: string; email: string }; trust?: Trust | null } = {},
): Promise<PublishedCapsule & { unchanged: boolean; skipped: PublishedInfo['skipped'] }> {
  const { payload, digest } = peekCapsule(bytes);
  const branch = target.branch ?? DEFAULT_BRANCH;
  const o = await open(target, true);
  try {
    const published = await findPublished(o, opts.trust ?? null);
    const skipped = published?.skipped ?? [];
    if (published && published.watermark >= 0) {
      const same = published.watermark === payload.watermark && published.digest === digest;
      // Same capsule at the tip: nothing to do. Same capsule below unverifiable commits: commit it again on top.
      if (same && published.commit === o.tip) return { commit: o.tip, watermark: payload.watermark, digest, unchanged: true, skipped };
      if (!same && payload.watermark <= published.watermark) {
        throw new PublishRefusedError(
          'watermark_not_above',
          `watermark ${payload.watermark} is not above the published watermark ${published.watermark} on ${branch}${opts.trust ? '' : ' (tip not verified: give --trust to skip capsules that do not verify)'}; sign again with --watermark auto`,
        );
      }
    }
    const gitdir = o.gitdir;
    const capsuleOid = await git.writeBlob({ fs, gitdir, blob: bytes });
    const summaryOid = await git.writeBlob({ fs, gitdir, blob: Buffer.from(summary(payload, digest)) });
    // Rotations and a reset stay on the branch (an enforcer that was offline still needs them).
    const kept = (await tipTree(o)).filter((e) => e.path === TRUST_DIR || e.path === RESET_PATH);
    const tree = [
      { mode: '100644', path: SUMMARY_PATH, oid: summaryOid, type: 'blob' as const },
      { mode: '100644', path: CAPSULE_PATH, oid: capsuleOid, type: 'blob' as const },
      ...kept,
    ];
    const message = `capsule ${payload.watermark}${payload.source_commit ? ` from ${payload.source_commit}` : ''}\n\npayload sha256 ${digest}\n`;
    const commit = await commitOnBranch(o, branch, tree, message, opts);
    return { commit, watermark: payload.watermark, digest, unchanged: false, skipped };
  } finally {
    await o.cleanup();
  }
}

async function tipTree(o: Opened): Promise<TreeEntry[]> {
  if (!o.tip) return [];
  const { tree } = await git.readTree({ fs, gitdir: o.gitdir, oid: o.tip });
  return tree as TreeEntry[];
}

/** Writes a commit of `tree` on top of the tip and moves the branch (push, or a checked local ref update). */
async function commitOnBranch(
  o: Opened,
  branch: string,
  entries: TreeEntry[],
  message: string,
  opts: { now?: Date; author?: { name: string; email: string } },
): Promise<string> {
  const gitdir = o.gitdir;
  const tree = await git.writeTree({ fs, gitdir, tree: [...entries].sort((a, b) => (a.path < b.path ? -1 : 1)) });
  const now = opts.now ?? new Date();
  const author = {
    name: opts.author?.name ?? process.env.GIT_AUTHOR_NAME ?? 'lilith publish',
    email: opts.author?.email ?? process.env.GIT_AUTHOR_EMAIL ?? 'lilith@localhost',
    timestamp: Math.floor(now.getTime() / 1000),
    timezoneOffset: 0,
  };
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
    const current = await git.resolveRef({ fs, gitdir, ref: `refs/heads/${branch}` }).catch(() => null);
    if (current !== o.tip) throw new PublishRefusedError('branch_moved', `${branch} moved while publishing (now ${current}); try again`);
    await git.writeRef({ fs, gitdir, ref: `refs/heads/${branch}`, value: commit, force: true });
  }
  return commit;
}

/** What publishDocument put where. */
export interface PublishedDocument {
  commit: string;
  path: string;
  kind: 'trust' | 'reset' | 'timestamp';
  unchanged: boolean;
}

/**
 * Publishes a signed trust rotation (trust/<version>.json), reset (reset.json) or
 * timestamp (timestamp.json) beside the capsule at the tip, in a new commit that keeps
 * everything else. With `trust`, the document is verified first (rotation against the
 * current trust, reset and timestamp against its roles); a timestamp must always name
 * the capsule at the tip.
 */
export async function publishDocument(
  bytes: Uint8Array,
  target: RepoTarget,
  opts: { now?: Date; author?: { name: string; email: string }; trust?: Trust | null } = {},
): Promise<PublishedDocument> {
  const branch = target.branch ?? DEFAULT_BRANCH;
  const now = opts.now ?? new Date();
  const docKind = documentKindOf(bytes);
  const o = await open(target, true);
  try {
    if (!o.tip) throw new PublishError('not_a_repository', `${branch} has no capsule yet: publish a capsule first`);
    const entries = await tipTree(o);
    const gitdir = o.gitdir;
    const blob = await git.writeBlob({ fs, gitdir, blob: bytes });
    let kind: PublishedDocument['kind'];
    let path: string;
    let next: TreeEntry[];
    let message: string;
    if (docKind === 'trust') {
      const version = opts.trust
        ? verifyTrustUpdate(bytes, opts.trust, now).version
        : parseTrust(decodeEnvelope(bytes, TRUST_PAYLOAD_TYPE).payloadBytes, 'trust update payload').version;
      kind = 'trust';
      path = `${TRUST_DIR}/${rotationFileName(version)}`;
      const dir = entries.find((e) => e.path === TRUST_DIR && e.type === 'tree');
      const inner = dir ? ((await git.readTree({ fs, gitdir, oid: dir.oid })).tree as TreeEntry[]) : [];
      const existing = inner.find((e) => e.path === rotationFileName(version));
      if (existing?.oid === blob) return { commit: o.tip, path, kind, unchanged: true };
      if (existing) throw new PublishRefusedError('watermark_not_above', `${path} already holds another rotation to version ${version}`);
      const sub = await git.writeTree({
        fs,
        gitdir,
        tree: [...inner, { mode: '100644', path: rotationFileName(version), oid: blob, type: 'blob' as const }].sort((a, b) =>
          a.path < b.path ? -1 : 1,
        ),
      });
      next = [...entries.filter((e) => e.path !== TRUST_DIR), { mode: '040000', path: TRUST_DIR, oid: sub, type: 'tree' }];
      message = `trust rotation to version ${version}\n`;
    } else if (docKind === 'reset' || docKind === 'timestamp') {
      kind = docKind;
      path = kind === 'reset' ? RESET_PATH : TIMESTAMP_PATH;
      if (kind === 'reset') {
        const r = opts.trust ? verifyReset(bytes, opts.trust, now).payload : null;
        message = `watermark-floor reset${r ? ` to ${r.watermark}` : ''}\n`;
      } else {
        const t = opts.trust
          ? verifyTimestamp(bytes, opts.trust, now).payload
          : parseTimestampPayload(decodeEnvelope(bytes, TIMESTAMP_PAYLOAD_TYPE).payloadBytes);
        const tipCapsule = await readCapsuleAt(gitdir, o.tip);
        const tipDigest = tipCapsule ? peekCapsule(tipCapsule).digest : null;
        if (tipDigest !== t.capsule_digest)
          throw new CapsuleError(
            'mismatch',
            `timestamp names capsule ${t.capsule_digest.slice(0, 16)}…, the tip of ${branch} holds ${tipDigest?.slice(0, 16) ?? 'none'}…`,
          );
        message = `timestamp: watermark ${t.watermark} current at ${t.issued_at}\n`;
      }
      if (entries.find((e) => e.path === path)?.oid === blob) return { commit: o.tip, path, kind, unchanged: true };
      next = [...entries.filter((e) => e.path !== path), { mode: '100644', path, oid: blob, type: 'blob' }];
    } else {
      throw new CapsuleError('malformed', 'not a trust rotation, reset or timestamp envelope');
    }
    const commit = await commitOnBranch(o, branch, next, message, opts);
    return { commit, path, kind, unchanged: false };
  } finally {
    await o.cleanup();
  }
}

/** The capsule at the branch tip, verified against `trust` (capsule role signatures) when given. */
export async function tipCapsule(
  target: RepoTarget,
  trust: Trust | null,
): Promise<{ payload: CapsulePayload; digest: string; commit: string } | null> {
  const o = await open(target, false);
  try {
    if (!o.tip) return null;
    const bytes = await readCapsuleAt(o.gitdir, o.tip);
    if (!bytes) throw new CapsuleError('malformed', `the tip of ${target.branch ?? DEFAULT_BRANCH} has no readable ${CAPSULE_PATH}`);
    const { payload, digest } = trust ? verifyCapsuleSignatures(bytes, trust) : peekCapsule(bytes);
    return { payload, digest, commit: o.tip };
  } finally {
    await o.cleanup();
  }
}
