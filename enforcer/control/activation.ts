// Activation: the only way a capsule becomes policy. One serialized pipeline:
// verify (signatures, threshold, expiry, anti-rollback against the persisted state) →
// build the engine completely → update kernel maps → persist the capsule bytes, then
// the state → swap one reference. Anything that fails before the swap leaves the
// active capsule in place and is reported (audit event, metric, status).
//
// Crash safety: the capsule file is written (temp, fsync, rename) before the state,
// so on disk the persisted capsule is always at or above the state's watermark; a
// restart re-verifies it against the state and comes back on exactly one capsule.
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CapsuleError,
  applyReset,
  bundleOf,
  decodeEnvelope,
  documentKindOf,
  isCapsuleError,
  MAX_TRUST_BYTES,
  parseTrust,
  sha256Hex,
  TRUST_PAYLOAD_TYPE,
  verifyCapsuleSignatures,
  verifyReset,
  verifyTimestamp,
  verifyTrustUpdate,
  type VerifiedTimestamp,
  peekCapsule,
  peekCapsuleClaims,
  readState,
  stateFor,
  verifyCapsule,
  writeStateAtomic,
  type CapsuleState,
  type Trust,
  type VerifiedCapsule,
} from '../../capsule/index.js';
import type { AuditSink, CapsuleAuditEvent } from '../audit/event.js';
import { controlMetrics } from './metrics.js';
import { createAuthorizer, type EngineName } from '../../cedar/index.js';
import { checkConfig } from '../../capsule/config-check.js';
import type { PolicySnapshot, SnapshotSource } from './snapshot.js';
import type { CapsuleCandidate, DocumentKind } from './sync/types.js';
import { VerifyWorker, type VerifiedForActivation } from './verify-worker.js';
import { validated } from './validate-capsule.js';
import { writeFileAtomic } from '../../capsule/atomic-file.js';
import { parseBoundedJson, SMALL_DOC_SHAPE } from '../../capsule/json-limits.js';

export const PERSISTED_CAPSULE = 'active-capsule.json';
export const PERSISTED_META = 'active-capsule.meta.json';
/** The trust file an in-band rotation installed (used instead of the configured one while its version is higher). */
export const PERSISTED_TRUST = 'trust-rotated.json';
/** The freshest timestamp accepted for the active capsule (re-verified at start). */
export const PERSISTED_TIMESTAMP = 'active-timestamp.json';
/** How many recent refusals status keeps. */
export const REFUSAL_HISTORY = 20;

/** A PolicySnapshot plus what status reports about it. */
export interface ActiveSnapshot extends PolicySnapshot {
  readonly keyids: string[];
  readonly source: string;
  /** The capsule branch commit the bytes came from (git source), else null. */
  readonly capsuleCommit: string | null;
  readonly activatedAt: Date;
  readonly createdAt: Date;
}

/** Kernel map updates driven by a capsule (exec allowlist, proxy address, registrations). */
export interface KernelApplier {
  /** Makes the kernel maps match `next`. Throws if it could not; activation then restores `previous`. */
  apply(next: PolicySnapshot, previous: PolicySnapshot | null): Promise<void>;
}

export interface ActivationOptions {
  trust: Trust;
  stateDir: string;
  engine: EngineName;
  audit?: AuditSink | null;
  kernel?: KernelApplier | null;
  maxCapsuleBytes?: number;
  /** How long a replaced engine stays usable for requests that started on it. */
  disposeGraceMs?: number;
  now?: () => Date;
  /** Test seam: awaited at named steps (LILITH_TEST_PAUSE_AT in the daemon). */
  pauseAt?: (step: 'after-persist-capsule' | 'after-write-state') => Promise<void>;
  log?: (line: string) => void;
}

export interface Refusal {
  time: string;
  source: string;
  code: string;
  reason: string;
  watermark: number | null;
  digest: string | null;
}

export type OfferResult =
  | { result: 'activated'; watermark: number; swapPauseUs: number }
  | { result: 'unchanged' }
  | { result: 'rotated'; version: number }
  | { result: 'fresh'; issuedAt: string }
  | { result: 'reset'; watermark: number }
  | { result: 'refused'; refusal: Refusal };

/** How fresh the active capsule is (trust files with a timestamp role only). */
interface Freshness {
  /** The freshest issued_at of a valid timestamp for the active capsule, else its created_at. */
  at: Date;
  timestamp: VerifiedTimestamp | null;
  stale: boolean;
  failed: boolean;
}

/** Thrown at startup when the persisted state cannot be trusted; the daemon exits with it. */
export class StartupStateError extends Error {}

export class Activator implements SnapshotSource {
  #opts: ActivationOptions;
  #active: ActiveSnapshot | null = null;
  /** What get() returns: the active snapshot, or null once it expired under fail_closed. */
  #served: ActiveSnapshot | null = null;
  #state: CapsuleState | null = null;
  #queue: Promise<unknown> = Promise.resolve();
  #lastRefusal: Refusal | null = null;
  /** The last REFUSAL_HISTORY refusals, newest last (status). */
  #refusalHistory: Refusal[] = [];
  #refusals = 0;
  #activations = 0;
  #lastSwapPauseUs: number | null = null;
  #expired = false;
  #fresh: Freshness | null = null;
  /** Why the active capsule is not served although present (rotation or reset took it away), or null. */
  #revoked: string | null = null;
  #trustSource: 'file' | 'rotated' = 'file';
  /** sha256 of the active capsule's envelope bytes: the same bytes again are not re-verified. */
  #activeBytesSha: string | null = null;
  #expiryTimer: NodeJS.Timeout | null = null;
  #lastExpiryLog = 0;
  #verifier = new VerifyWorker();

  constructor(opts: ActivationOptions) {
    this.#opts = opts;
    controlMetrics.trustVersion.set(opts.trust.version);
  }

  /**
   * Replaces the trust file for future verifications (SIGHUP re-read of the configured
   * file). The version never goes down: a file older than the one in use (e.g. the
   * configured file after an in-band rotation) is ignored. Returns whether it was taken.
   */
  setTrust(trust: Trust): boolean {
    const current = this.#opts.trust;
    if (trust.version < current.version) {
      this.#log(
        `trust file version ${trust.version} is below the version in use (${current.version}, ${this.#trustSource}); keeping version ${current.version}`,
      );
      return false;
    }
    this.#opts = { ...this.#opts, trust };
    this.#trustSource = 'file';
    controlMetrics.trustVersion.set(trust.version);
    return true;
  }

  trust(): Trust {
    return this.#opts.trust;
  }

  /** The snapshot for one decision: a single field read. */
  get(): PolicySnapshot | null {
    return this.#served;
  }

  active(): ActiveSnapshot | null {
    return this.#active;
  }

  state(): CapsuleState | null {
    return this.#state;
  }

  /**
   * Loads the persisted state and last-good capsule, before any network step.
   * Missing or corrupt state next to a persisted capsule means the anti-rollback floor
   * is gone: refuse to start (StartupStateError) unless `resetState`, which re-seeds the
   * state from the persisted capsule after verifying its signatures.
   */
  async loadPersisted(resetState: boolean): Promise<OfferResult | null> {
    const { stateDir } = this.#opts;
    await mkdir(stateDir, { recursive: true });
    await this.#loadRotatedTrust();
    let bytes: Buffer | null = null;
    try {
      bytes = await readFile(join(stateDir, PERSISTED_CAPSULE));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new StartupStateError(`cannot read persisted capsule ${join(stateDir, PERSISTED_CAPSULE)}: ${(err as Error).message}`);
    }
    let state: CapsuleState | null;
    try {
      state = await readState(stateDir);
    } catch (err) {
      if (!resetState) {
        throw new StartupStateError(
          `${(err as Error).message}. The anti-rollback state cannot be trusted; refusing to start. Restart with --reset-state to re-seed it from the persisted capsule${bytes ? '' : ' (there is none: the next capsule synced becomes the floor)'}.`,
        );
      }
      state = null;
    }
    if (state === null && bytes !== null && !resetState) {
      throw new StartupStateError(
        `anti-rollback state ${join(stateDir, 'state.json')} is missing but a persisted capsule exists: the state was deleted, so a rollback could no longer be detected. Refusing to start; restart with --reset-state to re-seed the state from the persisted capsule.`,
      );
    }
    this.#state = state;
    let meta: { source?: string; commit?: string | null } = {};
    try {
      meta = JSON.parse(await readFile(join(stateDir, PERSISTED_META), 'utf8')) as typeof meta;
    } catch {
      // Informational only (status shows where the capsule came from).
    }
    if (state === null && resetState) this.#log(`--reset-state: re-seeding the anti-rollback state from the persisted capsule`);
    if (!bytes) return null;
    const result = await this.offer({ source: 'disk', bytes, commit: meta.commit ?? null, kind: 'capsule' }, meta.source);
    const ts = await readFile(join(stateDir, PERSISTED_TIMESTAMP)).catch(() => null);
    if (ts && this.#active) await this.offer({ source: 'disk', bytes: ts, commit: null, kind: 'timestamp' });
    return result;
  }

  /** A trust file installed by an earlier in-band rotation replaces the configured one while its version is higher. */
  async #loadRotatedTrust(): Promise<void> {
    const path = join(this.#opts.stateDir, PERSISTED_TRUST);
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new StartupStateError(`cannot read rotated trust ${path}: ${(err as Error).message}`);
    }
    let rotated: Trust;
    try {
      rotated = parseTrust(bytes, `rotated trust ${path}`);
    } catch (err) {
      // Falling back to the configured (older) trust would re-admit rotated-out keys.
      throw new StartupStateError(`${(err as Error).message}; refusing to start (fix or remove it by hand)`);
    }
    if (rotated.version > this.#opts.trust.version) {
      this.#opts = { ...this.#opts, trust: rotated };
      this.#trustSource = 'rotated';
      controlMetrics.trustVersion.set(rotated.version);
      this.#log(`using trust version ${rotated.version} from an in-band rotation (${path})`);
    }
  }

  /** Verifies and, if acceptable, activates a candidate. Calls are serialized. */
  offer(candidate: CapsuleCandidate, persistedSource?: string): Promise<OfferResult> {
    return this.#enqueue(() => this.#offerAny(candidate, persistedSource));
  }

  /**
   * Applies a root-signed reset handed in by an operator (admin socket). Unlike one found
   * on the branch, a reset that does not apply is an error for the caller.
   */
  applyReset(bytes: Uint8Array, source: string): Promise<OfferResult> {
    return this.#enqueue(async () => {
      const r = await this.#applyReset({ source, bytes, commit: null }, true);
      this.#updateServed();
      return r;
    });
  }

  #enqueue<T>(job: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(job);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #kindOf(c: CapsuleCandidate): DocumentKind {
    if (c.kind) return c.kind;
    // Only small documents are looked at on this thread; a capsule goes to the worker.
    if (c.bytes.length > MAX_TRUST_BYTES) return 'capsule';
    return documentKindOf(c.bytes);
  }

  async #offerAny(c: CapsuleCandidate, persistedSource?: string): Promise<OfferResult> {
    const kind = this.#kindOf(c);
    let result: OfferResult;
    if (kind === 'trust') result = await this.#applyTrust(c);
    else if (kind === 'reset') result = await this.#applyReset(c, c.source !== 'disk' && !c.source.startsWith('git:'));
    else if (kind === 'timestamp') result = await this.#applyTimestamp(c);
    else {
      // One commit's documents in order: rotations, reset, capsule, timestamp. What is
      // served is decided once at the end, so a rotation that retires the active
      // capsule's key does not deny for the moment until the commit's new capsule is in.
      const comp = c.companions;
      for (const t of comp?.trust ?? []) await this.#applyTrust({ ...c, bytes: t, kind: 'trust' });
      if (comp?.reset) await this.#applyReset({ ...c, bytes: comp.reset, kind: 'reset' }, false);
      result = await this.#offerCapsule(c, persistedSource);
      if (comp?.timestamp) await this.#applyTimestamp({ ...c, bytes: comp.timestamp, kind: 'timestamp' });
    }
    this.#updateServed();
    return result;
  }

  async #offerCapsule(c: CapsuleCandidate, persistedSource?: string): Promise<OfferResult> {
    const now = this.#now();
    const bytesSha = sha256Hex(c.bytes);
    // A new commit holding the same capsule (a timestamp or rotation beside it): nothing to verify.
    if (this.#active && bytesSha === this.#activeBytesSha && !this.#revoked) return { result: 'unchanged' };
    let verified: VerifiedForActivation;
    try {
      verified =
        c.source === 'disk'
          ? validated(this.#verify(c, now))
          : await this.#verifier.verify(c.bytes, this.#opts.trust, this.#state, now, this.#opts.maxCapsuleBytes);
    } catch (err) {
      if (err instanceof CapsuleError) {
        const peek = peekCapsuleClaims(c.bytes);
        return this.#refuse(c, err.code, err.message, peek.watermark, peek.digest);
      }
      throw err;
    }
    const { payload, digest } = verified;
    if (this.#active && this.#active.digest === digest) return { result: 'unchanged' };
    // Verification and the engine build are both synchronous CPU work on the event
    // loop the dataplane shares: let pending decisions run between the two.
    await new Promise((r) => setImmediate(r));

    // A signature vouches for who built the capsule, not that its config is sound:
    // a config the enforcer cannot honour exactly is refused, never half-applied.
    const configIssues = checkConfig(payload.config);
    if (configIssues.length) {
      return this.#refuse(
        c,
        'bad_config',
        `lilith.json in the capsule is invalid: ${configIssues
          .slice(0, 5)
          .map((i) => `${i.path || '/'}: ${i.message}`)
          .join('; ')}`,
        payload.watermark,
        digest,
      );
    }

    let authorizer;
    try {
      authorizer = createAuthorizer({ ...bundleOf(payload), prepared: verified.prepared }, this.#opts.engine, { log: (l) => this.#log(l) });
    } catch (err) {
      return this.#refuse(c, 'engine_build', `policy set does not build: ${(err as Error).message}`, payload.watermark, digest);
    }
    const snapshot: ActiveSnapshot = Object.freeze({
      watermark: payload.watermark,
      digest,
      sourceCommit: payload.source_commit ?? c.commit,
      expiresAt: new Date(payload.expires_at),
      config: payload.config,
      entities: payload.entities,
      // The dataplane shapes MCP tool requests (declared actions and arguments) from the schema.
      schema: payload.schema,
      authorizer,
      keyids: verified.keyids,
      source: c.source === 'disk' && persistedSource ? persistedSource : c.source,
      capsuleCommit: c.commit,
      activatedAt: now,
      createdAt: new Date(payload.created_at),
    });

    const previous = this.#active;
    if (this.#opts.kernel) {
      try {
        await this.#opts.kernel.apply(snapshot, previous);
      } catch (err) {
        authorizer.dispose();
        if (previous)
          await this.#opts.kernel.apply(previous, snapshot).catch((e: Error) => this.#log(`kernel restore failed: ${e.message}`));
        return this.#refuse(c, 'kernel_apply', `kernel maps could not be updated: ${(err as Error).message}`, payload.watermark, digest);
      }
    }

    if (c.source !== 'disk') {
      try {
        await this.#persist(c, snapshot.source);
        await this.#opts.pauseAt?.('after-persist-capsule');
        if (!verified.alreadyAccepted) await writeStateAtomic(this.#opts.stateDir, stateFor(verified, now, this.#state));
        await this.#opts.pauseAt?.('after-write-state');
      } catch (err) {
        authorizer.dispose();
        if (this.#opts.kernel && previous) await this.#opts.kernel.apply(previous, snapshot).catch(() => undefined);
        // Not a refusal of the capsule: the source retries it on its next round.
        throw new Error(`cannot persist capsule watermark ${payload.watermark}: ${(err as Error).message}`);
      }
    } else if (!verified.alreadyAccepted) {
      // Restart after a crash between capsule and state write, or --reset-state.
      await writeStateAtomic(this.#opts.stateDir, stateFor(verified, now, this.#state));
    }
    if (!verified.alreadyAccepted) this.#state = stateFor(verified, now, this.#state);

    // The swap: one reference. A decision reads #served once, so it sees either the
    // old snapshot or the new one, never parts of both.
    const t0 = process.hrtime.bigint();
    this.#active = snapshot;
    this.#expired = false;
    this.#revoked = null;
    this.#fresh = { at: snapshot.createdAt, timestamp: null, stale: false, failed: false };
    this.#checkFreshness(now.getTime());
    this.#updateServed();
    const swapPauseUs = Number(process.hrtime.bigint() - t0) / 1000;
    this.#activeBytesSha = bytesSha;

    this.#activations++;
    this.#lastSwapPauseUs = swapPauseUs;
    controlMetrics.activations.inc();
    controlMetrics.watermark.set(snapshot.watermark);
    controlMetrics.expired.set(0);
    controlMetrics.swapPause.set(swapPauseUs / 1e6);
    this.#audit({
      result: 'activated',
      source: snapshot.source,
      watermark: snapshot.watermark,
      digest,
      swap_pause_us: swapPauseUs,
      ...(authorizer.fallbackReason !== undefined && { reason: `engine fallback to cedar-wasm: ${authorizer.fallbackReason}` }),
    });
    this.#log(
      `activated capsule watermark ${snapshot.watermark} digest ${digest.slice(0, 16)} from ${snapshot.source}${snapshot.sourceCommit ? ` (commit ${snapshot.sourceCommit.slice(0, 12)})` : ''}`,
    );
    if (previous) this.#retire(previous);
    this.#armExpiry();
    return { result: 'activated', watermark: snapshot.watermark, swapPauseUs };
  }

  #verify(c: CapsuleCandidate, now: Date): VerifiedCapsule {
    const { trust, maxCapsuleBytes } = this.#opts;
    const opts = maxCapsuleBytes ? { maxBytes: maxCapsuleBytes } : {};
    try {
      return verifyCapsule(c.bytes, trust, this.#state, now, opts);
    } catch (err) {
      // on_expiry "keep": the persisted last-good capsule stays enforced across a restart
      // even though it expired. Only for the disk copy, only if that capsule says so, and
      // still with every other check (signatures, threshold, anti-rollback) at a time
      // just before its expiry.
      if (c.source !== 'disk' || !(err instanceof CapsuleError) || err.code !== 'expired') throw err;
      const { payload } = peekCapsule(c.bytes);
      if (payload.config?.on_expiry !== 'keep') throw err;
      const verified = verifyCapsule(c.bytes, trust, this.#state, new Date(new Date(payload.expires_at).getTime() - 1), opts);
      this.#log(
        `persisted capsule watermark ${payload.watermark} has EXPIRED (${payload.expires_at}); on_expiry=keep: enforcing it anyway`,
      );
      return verified;
    }
  }

  async #persist(c: CapsuleCandidate, source: string): Promise<void> {
    const { stateDir } = this.#opts;
    await mkdir(stateDir, { recursive: true });
    await writeFileAtomic(join(stateDir, PERSISTED_META), Buffer.from(JSON.stringify({ source, commit: c.commit }) + '\n'));
    await writeFileAtomic(join(stateDir, PERSISTED_CAPSULE), c.bytes);
  }

  #refuse(c: CapsuleCandidate, code: string, reason: string, watermark: number | null, digest: string | null = null): OfferResult {
    const refusal: Refusal = { time: this.#now().toISOString(), source: c.source, code, reason, watermark, digest };
    this.#lastRefusal = refusal;
    this.#refusalHistory.push(refusal);
    if (this.#refusalHistory.length > REFUSAL_HISTORY) this.#refusalHistory.shift();
    this.#refusals++;
    controlMetrics.refusals.inc({ reason: code });
    this.#audit({ result: 'refused', source: c.source, watermark, digest, reason: `${code}: ${reason}` });
    this.#log(`REFUSED capsule from ${c.source}: ${code}: ${reason}`);
    return { result: 'refused', refusal };
  }

  /** Disposes a replaced engine once requests that started on it have had time to finish. */
  #retire(previous: ActiveSnapshot): void {
    const t = setTimeout(() => previous.authorizer.dispose(), this.#opts.disposeGraceMs ?? 60_000);
    t.unref?.();
  }

  #armExpiry(): void {
    if (this.#expiryTimer) return;
    this.#expiryTimer = setInterval(() => this.checkExpiry(), 1000);
    this.#expiryTimer.unref?.();
  }

  /** Marks the active capsule expired (loudly) and applies on_expiry; tracks freshness. Runs every second. */
  checkExpiry(): void {
    const active = this.#active;
    if (!active) return;
    const now = this.#now().getTime();
    this.#checkFreshness(now);
    controlMetrics.expiresIn.set((active.expiresAt.getTime() - now) / 1000);
    if (active.expiresAt.getTime() > now) return;
    const policy = active.config.on_expiry === 'keep' ? 'keep' : 'fail_closed';
    if (!this.#expired) {
      this.#expired = true;
      controlMetrics.expired.set(1);
      this.#updateServed();
      this.#audit({
        result: 'expired',
        source: active.source,
        watermark: active.watermark,
        digest: active.digest,
        reason: `expired at ${active.expiresAt.toISOString()}; on_expiry=${policy}`,
      });
    }
    if (now - this.#lastExpiryLog >= 60_000) {
      this.#lastExpiryLog = now;
      this.#log(
        `ACTIVE CAPSULE EXPIRED: watermark ${active.watermark} expired at ${active.expiresAt.toISOString()}; on_expiry=${policy}: ${policy === 'keep' ? 'still enforcing it' : 'every decision is denied'} until a newer capsule is published`,
      );
    }
  }

  /**
   * What the dataplane is served: the active capsule unless it expired under fail_closed,
   * its freshness failed (timestamp role, past fail_after_s), or a rotation or reset took
   * it away. One reference write; decisions read it once.
   */
  #updateServed(): void {
    const a = this.#active;
    const expiredClosed = this.#expired && a?.config.on_expiry !== 'keep';
    this.#served = a && !expiredClosed && !this.#fresh?.failed && !this.#revoked ? a : null;
  }

  /** Why get() is null, for status and the admin API. */
  notServingReason(): string | null {
    if (this.#served) return null;
    const a = this.#active;
    if (!a) return 'no capsule activated yet';
    if (this.#revoked) return this.#revoked;
    if (this.#fresh?.failed)
      return `the active capsule is STALE past fail_after_s: no fresh timestamp since ${this.#fresh.at.toISOString()} (a frozen mirror?)`;
    return 'the active capsule has expired (on_expiry=fail_closed)';
  }

  /** Re-evaluates STALE / failed-closed against the timestamp role's bounds; audits transitions. */
  #checkFreshness(now: number): void {
    const role = this.#opts.trust.roles.timestamp;
    const f = this.#fresh;
    const a = this.#active;
    if (!role || !f || !a) {
      controlMetrics.stale.set(0);
      controlMetrics.freshnessFailed.set(0);
      if (f) {
        f.stale = false;
        f.failed = false;
      }
      return;
    }
    const age = now - f.at.getTime();
    const stale = age > role.staleAfterMs || (f.timestamp !== null && now >= f.timestamp.expiresAt.getTime());
    const failed = age > role.failAfterMs;
    controlMetrics.freshnessAge.set(age / 1000);
    controlMetrics.stale.set(stale ? 1 : 0);
    controlMetrics.freshnessFailed.set(failed ? 1 : 0);
    if (stale !== f.stale || failed !== f.failed) {
      const what = failed
        ? `STALE past fail_after_s (${role.failAfterMs / 1000} s): every decision is denied until a fresh timestamp arrives`
        : stale
          ? `STALE: no fresh timestamp since ${f.at.toISOString()} (stale_after_s ${role.staleAfterMs / 1000})`
          : `fresh again: timestamp issued ${f.at.toISOString()}`;
      this.#audit({ result: stale ? 'stale' : 'fresh', source: a.source, watermark: a.watermark, digest: a.digest, reason: what });
      this.#log(`active capsule watermark ${a.watermark}: ${what}`);
      f.stale = stale;
      f.failed = failed;
      this.#updateServed();
    }
  }

  /** A timestamp vouching for the active capsule: the freshest one counts. */
  async #applyTimestamp(c: CapsuleCandidate): Promise<OfferResult> {
    const trust = this.#opts.trust;
    // Legacy trust, or no timestamp role: freshness is not checked and timestamps mean nothing.
    if (!trust.roles.timestamp) return { result: 'unchanged' };
    const now = this.#now();
    let ts: VerifiedTimestamp;
    try {
      ts = verifyTimestamp(c.bytes, trust, now);
    } catch (err) {
      if (!isCapsuleError(err)) throw err;
      // The persisted timestamp after a long stop has simply expired: not an attack to report.
      if (c.source === 'disk') return { result: 'unchanged' };
      return this.#refuse(c, err.code, err.message, null, null);
    }
    const a = this.#active;
    const f = this.#fresh;
    if (!a || !f) return this.#refuse(c, 'mismatch', 'timestamp arrived with no active capsule', ts.payload.watermark, null);
    if (ts.payload.capsule_digest !== a.digest || ts.payload.watermark !== a.watermark) {
      // A timestamp for another capsule (mix-and-match, or the tip's capsule was refused) vouches for nothing here.
      return this.#refuse(
        c,
        'mismatch',
        `timestamp vouches for watermark ${ts.payload.watermark} (digest ${ts.payload.capsule_digest.slice(0, 16)}…), not the active capsule ${a.watermark} (${a.digest.slice(0, 16)}…)`,
        ts.payload.watermark,
        ts.payload.capsule_digest,
      );
    }
    if (ts.issuedAt.getTime() <= f.at.getTime()) return { result: 'unchanged' };
    f.at = ts.issuedAt;
    f.timestamp = ts;
    if (c.source !== 'disk')
      await writeFileAtomic(join(this.#opts.stateDir, PERSISTED_TIMESTAMP), c.bytes).catch((e: Error) =>
        this.#log(`cannot persist timestamp: ${e.message}`),
      );
    this.#checkFreshness(now.getTime());
    return { result: 'fresh', issuedAt: ts.payload.issued_at };
  }

  /** An in-band trust rotation: verified against the trust in use, persisted, then used. */
  async #applyTrust(c: CapsuleCandidate): Promise<OfferResult> {
    const current = this.#opts.trust;
    // Rotations stay on the branch; one not above the version in use is old news, whoever
    // signed it — looked at before any signature is checked, so replays cost nothing.
    const claimed = claimedTrustVersion(c.bytes);
    if (claimed !== null && claimed <= current.version) return { result: 'unchanged' };
    const now = this.#now();
    let next: Trust;
    try {
      next = verifyTrustUpdate(c.bytes, current, now);
    } catch (err) {
      if (!isCapsuleError(err)) throw err;
      if (err.code === 'rollback') return { result: 'unchanged' };
      return this.#refuse(c, err.code, `trust rotation: ${err.message}`, null, null);
    }
    await writeFileAtomic(join(this.#opts.stateDir, PERSISTED_TRUST), JSON.stringify(next.file, null, 2) + '\n');
    this.#opts = { ...this.#opts, trust: next };
    this.#trustSource = 'rotated';
    controlMetrics.trustVersion.set(next.version);
    const reason = `trust rotated from version ${current.version} to ${next.version}: capsule role ${next.roles.capsule.threshold} of [${[...next.roles.capsule.keys.keys()].map((k) => k.slice(0, 16)).join(', ')}]`;
    this.#audit({ result: 'trust_rotated', source: c.source, watermark: null, digest: null, reason });
    this.#log(reason);
    // The active capsule must still verify under the new trust (as it would at a restart).
    const a = this.#active;
    if (a) {
      const bytes = await readFile(join(this.#opts.stateDir, PERSISTED_CAPSULE)).catch(() => null);
      let ok = false;
      try {
        ok = bytes !== null && verifyCapsuleSignatures(bytes, next).digest === a.digest;
      } catch {
        ok = false;
      }
      if (!ok)
        this.#revoked = `the active capsule (watermark ${a.watermark}) is not signed by the capsule role of trust version ${next.version}`;
    }
    this.#checkFreshness(now.getTime());
    return { result: 'rotated', version: next.version };
  }

  /**
   * A root-signed watermark-floor reset. From the branch (`strict` false) one that does
   * not apply (already applied, the state holds another capsule) is old news; from an
   * operator it is an error.
   */
  async #applyReset(c: CapsuleCandidate, strict: boolean): Promise<OfferResult> {
    const now = this.#now();
    let next: CapsuleState;
    let id: string;
    let keyids: string[];
    try {
      const reset = verifyReset(c.bytes, this.#opts.trust, now);
      const a = this.#active;
      next = applyReset(this.#state, reset, now, a && a.digest === reset.payload.undoes_digest ? a.createdAt : undefined);
      ({ id, keyids } = reset);
    } catch (err) {
      if (!isCapsuleError(err)) throw err;
      if (err.code === 'mismatch' && !strict) return { result: 'unchanged' };
      return this.#refuse(c, err.code, `reset: ${err.message}`, null, null);
    }
    const before = this.#state!;
    await writeStateAtomic(this.#opts.stateDir, next);
    this.#state = next;
    const reason = `root-signed reset ${id.slice(0, 16)}… by ${keyids.map((k) => k.slice(0, 16)).join(', ')}: watermark floor lowered from ${before.watermark} to ${next.watermark}; capsules created before ${next.not_before} are refused`;
    this.#audit({ result: 'state_reset', source: c.source, watermark: next.watermark, digest: before.digest, reason });
    this.#log(reason);
    if (this.#active?.digest === before.digest)
      this.#revoked = `the active capsule (watermark ${this.#active.watermark}) was undone by a root-signed reset; waiting for a capsule created after ${next.not_before}`;
    return { result: 'reset', watermark: next.watermark };
  }

  /** What `lilith status` shows about activation. */
  status() {
    const a = this.#active;
    const trust = this.#opts.trust;
    const role = trust.roles.timestamp;
    const f = this.#fresh;
    const roleView = (r: { threshold: number; keys: ReadonlyMap<string, Uint8Array> }) => ({
      threshold: r.threshold,
      keyids: [...r.keys.keys()],
    });
    return {
      active: a && {
        watermark: a.watermark,
        digest: a.digest,
        source: a.source,
        source_commit: a.sourceCommit,
        capsule_commit: a.capsuleCommit,
        keyids: a.keyids,
        activated_at: a.activatedAt.toISOString(),
        expires_at: a.expiresAt.toISOString(),
        expired: this.#expired,
        on_expiry: a.config.on_expiry === 'keep' ? 'keep' : 'fail_closed',
        enforcing: this.#served !== null,
        not_serving_reason: this.notServingReason(),
        /** null: the trust file has no timestamp role, freshness is not checked. */
        freshness:
          role && f
            ? {
                fresh_at: f.at.toISOString(),
                age_s: Math.round((this.#now().getTime() - f.at.getTime()) / 1000),
                stale: f.stale,
                failed_closed: f.failed,
                stale_after_s: role.staleAfterMs / 1000,
                fail_after_s: role.failAfterMs / 1000,
                timestamp: f.timestamp && {
                  issued_at: f.timestamp.payload.issued_at,
                  expires_at: f.timestamp.payload.expires_at,
                  keyids: f.timestamp.keyids,
                },
              }
            : null,
        engine: a.authorizer.engine,
        /** Why the compiled engine fell back to cedar-wasm (a compiler bug), or null. */
        engine_fallback: a.authorizer.fallbackReason ?? null,
      },
      state: this.#state,
      trust: {
        version: trust.version,
        legacy: trust.legacy,
        source: this.#trustSource,
        expires_at: trust.expiresAt?.toISOString() ?? null,
        roles: {
          root: roleView(trust.roles.root),
          capsule: roleView(trust.roles.capsule),
          timestamp: role ? { ...roleView(role), stale_after_s: role.staleAfterMs / 1000, fail_after_s: role.failAfterMs / 1000 } : null,
        },
      },
      activations: this.#activations,
      last_swap_pause_us: this.#lastSwapPauseUs,
      refusals: this.#refusals,
      last_refusal: this.#lastRefusal,
      refusal_history: [...this.#refusalHistory],
    };
  }

  stop(): void {
    if (this.#expiryTimer) clearInterval(this.#expiryTimer);
    this.#expiryTimer = null;
    void this.#verifier.close();
  }

  #audit(e: Omit<CapsuleAuditEvent, 'kind' | 'time'>): void {
    this.#opts.audit?.emit({ kind: 'capsule', time: this.#now().toISOString(), ...e });
  }

  #log(line: string): void {
    (this.#opts.log ?? ((l: string) => process.stderr.write(`lilith enforcer: ${l}\n`)))(line);
  }

  #now(): Date {
    return this.#opts.now?.() ?? new Date();
  }
}

/** The version a trust rotation envelope claims, unverified (only to skip old rotations cheaply); null if unreadable. */
function claimedTrustVersion(bytes: Uint8Array): number | null {
  try {
    if (bytes.length > MAX_TRUST_BYTES) return null;
    const env = decodeEnvelope(bytes, TRUST_PAYLOAD_TYPE);
    const v = (parseBoundedJson(env.payloadBytes, SMALL_DOC_SHAPE, 'trust update payload') as { version?: unknown }).version;
    return typeof v === 'number' && Number.isSafeInteger(v) ? v : null;
  } catch {
    return null;
  }
}
