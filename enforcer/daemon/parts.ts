// The optional parts the daemon composes when enabled (kernel programs, dataplane):
// the contract plugins.ts fills, and how the daemon holds each part through its
// life — not yet there, running, or failed with a reason its status reports.
import type { Activator, KernelApplier } from '../control/index.js';
import type { AuditSink } from '../audit/event.js';
import type { KernelStatus } from '../kernel/index.js';
import { DaemonConfigError } from './config.js';

export interface PartContext {
  activator: Activator;
  audit: AuditSink;
  log: (line: string) => void;
}

export interface KernelPart {
  applier: KernelApplier;
  status(): KernelStatus;
  stop(): Promise<void>;
}

export interface DataplanePart {
  stop(): Promise<void>;
  status?(): Record<string, unknown>;
}

/** Optional parts the daemon composes when enabled (kernel, dataplane). */
export interface DaemonPlugins {
  kernel?: (ctx: PartContext) => Promise<KernelPart>;
  dataplane?: (ctx: PartContext) => Promise<DataplanePart>;
}

export type DataplaneStatus = { enabled: boolean; error?: string; [k: string]: unknown };

const KERNEL_OFF: KernelStatus = { mode: 'off', hooks: [], heartbeat_age_ms: null };

/** The kernel part. Its applier is handed to the activator before the part exists, so it is a no-op until then. */
export class KernelHolder {
  #part: KernelPart | null = null;
  #error: string | undefined;
  readonly applier: KernelApplier = { apply: (next, previous) => this.#part?.applier.apply(next, previous) ?? Promise.resolve() };

  /** Attaches and brings the maps in line with the capsule already active. */
  async start(plugin: DaemonPlugins['kernel'], ctx: PartContext): Promise<void> {
    if (!plugin)
      throw new DaemonConfigError('unavailable', 'kernel enforcement is enabled but this build has no kernel module; run with --no-kernel');
    this.#part = await plugin(ctx);
    const active = ctx.activator.active();
    if (active) {
      await this.#part.applier.apply(active, null).catch((e: Error) => {
        this.#error = e.message;
        ctx.log(`kernel apply: ${e.message}`);
      });
    }
  }

  status(): KernelStatus {
    if (!this.#part) return { ...KERNEL_OFF };
    return { ...this.#part.status(), ...(this.#error ? { error: this.#error } : {}) };
  }

  async stop(): Promise<void> {
    await this.#part?.stop().catch(() => undefined);
  }
}

/**
 * The dataplane part. It listens where the capsule says, so it starts with the first
 * active capsule (until then nothing is allowed anyway); a later capsule that moves
 * the listeners is reported, not followed (rebinding needs a restart).
 */
export class DataplaneHolder {
  #plugin: DaemonPlugins['dataplane'];
  #ctx: PartContext;
  #part: DataplanePart | null = null;
  #listen: string | null = null;
  #error: string | undefined;

  constructor(enabled: boolean, plugin: DaemonPlugins['dataplane'], ctx: PartContext) {
    if (enabled && !plugin)
      throw new DaemonConfigError('unavailable', 'the dataplane is enabled but this build has no dataplane; run with --no-dataplane');
    this.#plugin = enabled ? plugin : undefined;
    this.#ctx = ctx;
  }

  /** Starts the dataplane if a capsule is active and it is not running yet. Never throws: a failure shows in status(). */
  async ensure(): Promise<void> {
    const active = this.#ctx.activator.active();
    if (!this.#plugin || !active) return;
    const listen = [active.config.proxy.listen, active.config.proxy.listen6 ?? '', active.config.proxy.dns_listen].join(' ');
    if (this.#part) {
      if (listen !== this.#listen) {
        this.#error = `capsule watermark ${active.watermark} moves the proxy to ${listen}; restart the enforcer to rebind (still listening on ${this.#listen})`;
        this.#ctx.log(this.#error);
      }
      return;
    }
    try {
      this.#part = await this.#plugin(this.#ctx);
      this.#listen = listen;
      this.#error = undefined;
    } catch (err) {
      this.#error = `dataplane did not start: ${(err as Error).message}`;
      this.#ctx.log(this.#error);
    }
  }

  status(): DataplaneStatus {
    return { enabled: this.#part !== null, ...(this.#part?.status?.() ?? {}), ...(this.#error ? { error: this.#error } : {}) };
  }

  async stop(): Promise<void> {
    await this.#part?.stop().catch(() => undefined);
  }
}
