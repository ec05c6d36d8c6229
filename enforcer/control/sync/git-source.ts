// GitOps source: follows one branch of a git remote over smart HTTP(S) with a
// persistent shallow, single-branch clone. Each round first asks the server where the
// branch points (one small request); only when it moved does it fetch (depth 1) and
// read the capsule file from that commit. Force pushes are just a new tip: the clone
// holds nothing but the latest commit, and a clone that git cannot update is wiped
// and fetched again.
import git from 'isomorphic-git';
import fs from 'node:fs';
import { rm, mkdir, readdir } from 'node:fs/promises';
import { RESET_PATH, rotationFileName, rotationVersionOf, TIMESTAMP_PATH, TRUST_DIR } from '../../../capsule/branch.js';
import { withHeadShim } from '../../../capsule/git/head-shim.js';
import { limitedHttp, SyncNetworkError } from '../../../capsule/git/http-client.js';
import { withPackLimits } from '../../../capsule/git/pack-limits.js';
import {
  emptyStatus,
  type CandidateHandler,
  type CapsuleCandidate,
  type CapsuleSource,
  type SourceStatus,
  type SyncOutcome,
} from './types.js';

const MAX_PACKS = 32;
/** Rotations read per commit (the newest ones; an enforcer further behind needs its trust file updated). */
const MAX_ROTATIONS = 32;
/** Trust, reset and timestamp documents (MAX_TRUST_BYTES). */
const MAX_DOC_BYTES = 1024 * 1024;

export interface GitSourceOptions {
  url: string;
  branch: string;
  /** Path of the capsule inside the branch. */
  file: string;
  /** Directory for the persistent clone. */
  cloneDir: string;
  pollMinMs: number;
  pollMaxMs: number;
  /** Upper bound of the error backoff. */
  backoffMaxMs: number;
  timeoutMs: number;
  /** Cap on one capsule, and (with headroom) on one HTTP response. */
  maxCapsuleBytes: number;
  onRequest?: (url: string) => void;
  onOutcome?: (outcome: SyncOutcome) => void;
}

export class GitSource implements CapsuleSource {
  readonly name: string;
  #opts: GitSourceOptions;
  #http: ReturnType<typeof limitedHttp>;
  #fetchHttp: ReturnType<typeof withHeadShim>;
  #status: SourceStatus;
  #timer: NodeJS.Timeout | null = null;
  #running = false;
  #round: Promise<void> | null = null;
  #lastOffered: string | null = null;
  #onCandidate: CandidateHandler | null = null;

  constructor(opts: GitSourceOptions) {
    this.#opts = opts;
    this.name = `git:${opts.url}#${opts.branch}`;
    this.#status = emptyStatus(this.name, 'git');
    // Pack files carry some overhead over the blob; refs advertisements are small.
    this.#http = limitedHttp({ timeoutMs: opts.timeoutMs, maxBytes: opts.maxCapsuleBytes * 2 + 1024 * 1024, onRequest: opts.onRequest });
    // Every pack is checked object by object (declared sizes, capped inflation) before
    // isomorphic-git indexes it: a compressible bomb is refused from its headers.
    const packed = withPackLimits(this.#http, {
      maxObjectBytes: opts.maxCapsuleBytes,
      maxTotalBytes: opts.maxCapsuleBytes * 2 + 1024 * 1024,
      maxObjects: 256,
    });
    this.#fetchHttp = withHeadShim(packed, `refs/heads/${opts.branch}`);
  }

  status(): SourceStatus {
    return { ...this.#status };
  }

  async start(onCandidate: CandidateHandler): Promise<void> {
    this.#onCandidate = onCandidate;
    this.#running = true;
    await mkdir(this.#opts.cloneDir, { recursive: true });
    this.#schedule(0);
  }

  async stop(): Promise<void> {
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#round;
  }

  /** Runs one sync round now (tests, `SIGHUP`). */
  async syncNow(): Promise<SyncOutcome> {
    await this.#round;
    return this.#sync();
  }

  #schedule(delayMs: number): void {
    if (!this.#running) return;
    this.#status.next_attempt = new Date(Date.now() + delayMs).toISOString();
    this.#timer = setTimeout(() => {
      this.#round = this.#sync().then((outcome) => {
        this.#schedule(this.#nextDelay(outcome));
      });
    }, delayMs);
    this.#timer.unref?.();
  }

  #nextDelay(outcome: SyncOutcome): number {
    const { pollMinMs, pollMaxMs, backoffMaxMs } = this.#opts;
    const jitter = pollMinMs + Math.random() * Math.max(0, pollMaxMs - pollMinMs);
    if (outcome.result !== 'error') return jitter;
    // Exponential backoff from the poll interval, with full jitter so a fleet that lost
    // the server at the same moment does not come back in lockstep.
    const exp = Math.min(backoffMaxMs, pollMaxMs * 2 ** Math.min(this.#status.consecutive_failures, 16));
    return Math.max(pollMinMs, Math.random() * exp);
  }

  async #sync(): Promise<SyncOutcome> {
    this.#status.last_attempt = new Date().toISOString();
    let outcome: SyncOutcome;
    try {
      outcome = await this.#attempt();
    } catch (err) {
      outcome = { result: 'error', error: describe(err) };
    }
    this.#status.last_result = outcome.result;
    if (outcome.result === 'error') {
      this.#status.last_error = outcome.error;
      this.#status.consecutive_failures++;
    } else {
      this.#status.last_error = null;
      this.#status.last_success = new Date().toISOString();
      this.#status.consecutive_failures = 0;
    }
    this.#opts.onOutcome?.(outcome);
    return outcome;
  }

  async #attempt(): Promise<SyncOutcome> {
    const { url, branch, cloneDir, file } = this.#opts;
    const ref = `refs/heads/${branch}`;
    // Protocol v1: the ref advertisement is one GET (v2 needs a second round trip for ls-refs).
    const refs = await git.listServerRefs({ http: this.#http, url, prefix: ref, protocolVersion: 1 });
    const tip = refs.find((r) => r.ref === ref)?.oid;
    if (!tip) return { result: 'error', error: `branch '${branch}' not found on ${url}` };
    if (tip !== this.#status.last_commit && tip !== this.#lastOffered) this.#status.last_change_at = new Date().toISOString();
    this.#status.last_commit = tip;
    if (tip === this.#lastOffered) return { result: 'unchanged' };

    let head: string;
    try {
      head = await this.#fetch(ref);
    } catch (err) {
      if (err instanceof SyncNetworkError || isHttpError(err)) throw err;
      // The local clone is unusable (interrupted write, shallow state after a force
      // push isomorphic-git cannot reconcile): start it again from nothing.
      await rm(cloneDir, { recursive: true, force: true });
      await mkdir(cloneDir, { recursive: true });
      head = await this.#fetch(ref);
    }
    let blob: Uint8Array;
    try {
      ({ blob } = await git.readBlob({ fs, dir: cloneDir, oid: head, filepath: file }));
    } catch (err) {
      this.#lastOffered = head; // nothing to retry until the branch moves
      return { result: 'error', error: `commit ${head.slice(0, 12)} has no readable ${file}: ${describe(err)}` };
    }
    if (blob.length > this.#opts.maxCapsuleBytes) {
      this.#lastOffered = head;
      return {
        result: 'error',
        error: `${file} at ${head.slice(0, 12)} is ${blob.length} bytes, over the ${this.#opts.maxCapsuleBytes}-byte cap`,
      };
    }
    this.#status.last_commit = head;
    const companions = await this.#companions(head);
    // Marked as seen only after activation decided, so a transient failure there
    // (disk full while persisting) is retried on the next round.
    await this.#onCandidate?.({ source: this.name, bytes: blob, commit: head, kind: 'capsule', companions });
    this.#lastOffered = head;
    return { result: 'fetched', commit: head };
  }

  /**
   * The signed documents beside the capsule: trust/<version>.json rotations (oldest
   * first, at most MAX_ROTATIONS), reset.json, timestamp.json. Each is capped; one that is
   * missing is simply absent, one over its cap is dropped (activation would refuse it).
   */
  async #companions(head: string): Promise<NonNullable<CapsuleCandidate['companions']>> {
    const { cloneDir } = this.#opts;
    const read = async (filepath: string, cap: number): Promise<Uint8Array | null> => {
      try {
        const { blob } = await git.readBlob({ fs, dir: cloneDir, oid: head, filepath });
        return blob.length <= cap ? blob : null;
      } catch {
        return null;
      }
    };
    const trust: Uint8Array[] = [];
    const listing = await git.readTree({ fs, dir: cloneDir, oid: head, filepath: TRUST_DIR }).catch(() => null);
    const versions = (listing?.tree ?? [])
      .map((e) => (e.type === 'blob' ? rotationVersionOf(e.path) : null))
      .filter((v): v is number => v !== null)
      .sort((x, y) => x - y)
      .slice(-MAX_ROTATIONS);
    for (const v of versions) {
      const b = await read(`${TRUST_DIR}/${rotationFileName(v)}`, MAX_DOC_BYTES);
      if (b) trust.push(b);
    }
    return { trust, reset: await read(RESET_PATH, MAX_DOC_BYTES), timestamp: await read(TIMESTAMP_PATH, MAX_DOC_BYTES) };
  }

  async #fetch(ref: string): Promise<string> {
    const { url, branch, cloneDir } = this.#opts;
    // isomorphic-git never repacks: every fetch adds a pack. Past a few dozen, start
    // the clone over (the next fetch downloads only the tip commit anyway).
    const packs = await readdir(`${cloneDir}/.git/objects/pack`).catch(() => [] as string[]);
    if (packs.filter((p) => p.endsWith('.pack')).length > MAX_PACKS) {
      await rm(cloneDir, { recursive: true, force: true });
      await mkdir(cloneDir, { recursive: true });
    }
    if (!fs.existsSync(`${cloneDir}/.git`)) {
      await git.init({ fs, dir: cloneDir, defaultBranch: branch });
      await git.addRemote({ fs, dir: cloneDir, remote: 'origin', url });
    } else if ((await git.getConfig({ fs, dir: cloneDir, path: 'remote.origin.url' })) !== url) {
      await git.setConfig({ fs, dir: cloneDir, path: 'remote.origin.url', value: url });
    }
    const res = await git.fetch({
      fs,
      http: this.#fetchHttp,
      dir: cloneDir,
      remote: 'origin',
      ref,
      remoteRef: ref,
      singleBranch: true,
      depth: 1,
      tags: false,
      prune: false,
    });
    if (!res.fetchHead) throw new Error(`fetch of ${ref} returned no commit`);
    return res.fetchHead;
  }
}

function isHttpError(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'HttpError' || code === 'SmartHttpError' || code === 'UserCanceledError';
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const data = (err as { data?: { statusCode?: number; statusMessage?: string } }).data;
    if (data?.statusCode) return `HTTP ${data.statusCode} ${data.statusMessage ?? ''}`.trim();
    return err.message.replace(/\s+/g, ' ').trim();
  }
  return String(err);
}
