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
  bundleOf,
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
import type { CapsuleCandidate } from './sync/types.js';
import { VerifyWorker, type VerifiedForActivation } from './verify-worker.js';
import { validated } from './validate-capsule.js';
import { writeFileAtomic } from '../../capsule/atomic-file.js';

export const PERSISTED_CAPSULE = 'active-capsule.json';
export const PERSISTED_META = 'active-capsule.meta.json';
/** How many recent refusals status keeps. */
export const REFUSAL_HISTORY = 20;

/** A PolicySnapshot plus what status reports about it. */
export interface ActiveSnapshot extends PolicySnapshot {
  readonly keyids: string[];
  readonly source: string;
  /** The capsule branch commit the bytes came from (git source), else null. */
  readonly capsuleCommit: string | null;
  readonly activatedAt: Date;
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
  | { result: 'refused'; refusal: Refusal };

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
  #expiryTimer: NodeJS.Timeout | null = null;
  #lastExpiryLog = 0;
  #verifier = new VerifyWorker();

  constructor(opts: ActivationOptions) {
    this.#opts = opts;
  }

  /** Replaces the trust file for future verifications (after a rotation); the active capsule stays. */
  setTrust(trust: Trust): void {
    this.#opts = { ...this.#opts, trust };
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
    return this.offer({ source: 'disk', bytes, commit: meta.commit ?? null }, meta.source);
  }

  /** Verifies and, if acceptable, activates a candidate. Calls are serialized. */
  offer(candidate: CapsuleCandidate, persistedSource?: string): Promise<OfferResult> {
    const run = this.#queue.then(() => this.#offer(candidate, persistedSource));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #offer(c: CapsuleCandidate, persistedSource?: string): Promise<OfferResult> {
    const now = this.#now();
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
        if (!verified.alreadyAccepted) await writeStateAtomic(this.#opts.stateDir, stateFor(verified, now));
        await this.#opts.pauseAt?.('after-write-state');
      } catch (err) {
        authorizer.dispose();
        if (this.#opts.kernel && previous) await this.#opts.kernel.apply(previous, snapshot).catch(() => undefined);
        // Not a refusal of the capsule: the source retries it on its next round.
        throw new Error(`cannot persist capsule watermark ${payload.watermark}: ${(err as Error).message}`);
      }
    } else if (!verified.alreadyAccepted) {
      // Restart after a crash between capsule and state write, or --reset-state.
      await writeStateAtomic(this.#opts.stateDir, stateFor(verified, now));
    }
    if (!verified.alreadyAccepted) this.#state = stateFor(verified, now);

    // The swap: one reference. A decision reads #served once, so it sees either the
    // old snapshot or the new one, never parts of both.
    const t0 = process.hrtime.bigint();
    this.#active = snapshot;
    this.#served = snapshot;
    const swapPauseUs = Number(process.hrtime.bigint() - t0) / 1000;

    this.#expired = false;
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

  /** Marks the active capsule expired (loudly) and applies on_expiry. Runs every second. */
  checkExpiry(): void {
    const active = this.#active;
    if (!active) return;
    const now = this.#now().getTime();
    controlMetrics.expiresIn.set((active.expiresAt.getTime() - now) / 1000);
    if (active.expiresAt.getTime() > now) return;
    const policy = active.config.on_expiry === 'keep' ? 'keep' : 'fail_closed';
    if (!this.#expired) {
      this.#expired = true;
      controlMetrics.expired.set(1);
      if (policy === 'fail_closed') this.#served = null;
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

  /** What `lilith status` shows about activation. */
  status() {
    const a = this.#active;
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
        engine: a.authorizer.engine,
        /** Why the compiled engine fell back to cedar-wasm (a compiler bug), or null. */
        engine_fallback: a.authorizer.fallbackReason ?? null,
      },
      state: this.#state,
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
