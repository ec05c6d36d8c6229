// Kernel: the handle attach() returns and the one object the enforcer holds.
// It owns this process's resources (map fds, heartbeat timer, ring buffer,
// link fds) and nothing else: the pinned programs and maps belong to the pin
// root and keep enforcing after close(). Each job lives in its own module
// (heartbeat, identities, exec and unix allowlists, events, original
// destinations); the methods here only route to them, keeping one public surface.
import type { BpfLink } from './loader.js';
import { KernelConfigError, updatedSettings, type ProxySettings, type ResolvedConfig, type SettingsUpdate } from './config.js';
import { writeConfig } from './config-map.js';
import { Heartbeat } from './heartbeat.js';
import { deleteIdentity, writeIdentity, type IdentityOptions, type IdentitySelector } from './identities.js';
import { allowExecInode, allowExecPath, revokeExecInode } from './exec-allowlist.js';
import { allowUnixPath, listUnixPaths, replaceUnixAllowlist, revokeUnixPath } from './unix-allowlist.js';
import { lookupOriginalDestination, type PeerTuple } from './original-destination.js';
import { KernelEvents, type KernelEventListener } from './events.js';
import { PinnedMaps } from './pinned-maps.js';
import { detachPinned, type ReplacedPin } from './pins.js';
import type { HookStatus, KernelMode } from './mode.js';
import type { KernelEvent, KernelSettings, OriginalDestination } from './layout.js';

export class Kernel {
  readonly mode: KernelMode;
  readonly pinRoot: string;
  readonly cgroupPath: string;
  readonly hooks: HookStatus;
  /** True when every program was re-adopted from pins (nothing attached). */
  adopted = false;
  /** Pinned links found running another build's program: not adopted, replaced new-before-old. */
  replacedPins: ReplacedPin[] = [];
  #settings: KernelSettings;
  #links: BpfLink[] = [];
  #maps: PinnedMaps;
  #heartbeat: Heartbeat;
  #events: KernelEvents;
  #closed = false;

  /** @internal use attach() */
  constructor(r: ResolvedConfig, mode: KernelMode, hooks: HookStatus) {
    this.mode = mode;
    this.pinRoot = r.pinRoot;
    this.cgroupPath = r.cgroupPath;
    this.hooks = hooks;
    this.#settings = r.settings;
    this.#maps = new PinnedMaps(r.pinRoot);
    this.#heartbeat = new Heartbeat(this.#maps);
    this.#events = new KernelEvents(this.#maps);
  }

  /** @internal */
  adopt(links: BpfLink[], active: string[], adopted: boolean, replacedPins: ReplacedPin[] = []): void {
    this.#links = links;
    this.hooks.active.push(...active);
    this.adopted = adopted;
    this.replacedPins = replacedPins;
  }

  /** Current settings as written to the config map. */
  get settings(): KernelSettings {
    return this.#settings;
  }

  /**
   * Rewrites the config map (a capsule swap: proxy, TTL, families, flags).
   * Validates first; a bad value throws KernelConfigError and changes nothing.
   */
  configure(update: SettingsUpdate): void {
    const next = updatedSettings(this.#settings, this.cgroupPath, update);
    writeConfig(this.#maps, next);
    this.#settings = next;
  }

  /** Points managed traffic at a (new) proxy address/ports. */
  setProxy(proxy: ProxySettings): void {
    this.configure({ proxy });
  }

  /** Writes DAEMON_HEARTBEAT (CLOCK_MONOTONIC ns, default now). */
  setHeartbeat(ns?: bigint): void {
    this.#heartbeat.beat(ns);
  }

  /**
   * Heartbeats every intervalMs (default 250) until stopHeartbeat()/close().
   * The timer does not keep the process alive on its own (the daemon does).
   */
  startHeartbeat(intervalMs = 250): void {
    this.#heartbeat.start(intervalMs);
  }

  stopHeartbeat(): void {
    this.#heartbeat.stop();
  }

  /**
   * Names the identity (a number ≥ 1 the enforcer maps to a SPIFFE ID) of the
   * processes a selector matches. A cgroup or binary registration also makes
   * those processes managed.
   */
  registerIdentity(selector: IdentitySelector, identity: number, opts: IdentityOptions = {}): void {
    if (!Number.isInteger(identity) || identity < 1 || identity > 0xffffffff) {
      throw new KernelConfigError('identity', `${identity} is not an identity id (1..2^32-1)`);
    }
    writeIdentity(this.#maps, selector, identity, opts);
  }

  /** Makes a cgroup subtree managed without an identity yet: its network is denied until classified. */
  manageCgroup(dir: string, opts: IdentityOptions = {}): void {
    writeIdentity(this.#maps, { cgroup: dir }, 0, opts);
  }

  /** Removes a registration (running tasks keep what they already inherited). */
  unregisterIdentity(selector: IdentitySelector): boolean {
    return deleteIdentity(this.#maps, selector);
  }

  /**
   * Allows managed processes to connect/send to this AF_UNIX address (exact
   * match: a pathname as the server bound it, or "\0name" for an abstract
   * socket). Bad input throws KernelConfigError and changes nothing.
   */
  allowUnixPath(path: string): void {
    allowUnixPath(this.#maps, path);
  }

  /** Removes an AF_UNIX address from the allowlist; false when it was not there. */
  revokeUnixPath(path: string): boolean {
    return revokeUnixPath(this.#maps, path);
  }

  /** The AF_UNIX allowlist as pinned now. */
  unixAllowlist(): string[] {
    return listUnixPaths(this.#maps);
  }

  /** @internal Makes the pinned allowlist exactly these keys (attach: the config is the truth). */
  setUnixAllowlist(keys: readonly Buffer[]): void {
    replaceUnixAllowlist(this.#maps, keys);
  }

  /**
   * Allows managed processes to exec / map PROT_EXEC the file with this stat dev
   * (st_dev) and inode: every identity, or only `identity` when given (a
   * registration's own exec allowlist).
   */
  allowExecInode(dev: number | bigint, ino: number | bigint, identity?: number): void {
    allowExecInode(this.#maps, dev, ino, identity);
  }

  /** allowExecInode for the file at `path` now (the inode, not the path, is allowed). */
  allowExecPath(path: string, identity?: number): void {
    allowExecPath(this.#maps, path, identity);
  }

  /** Removes an allowlist entry: the shared one, or `identity`'s own. */
  revokeExecInode(dev: number | bigint, ino: number | bigint, identity?: number): boolean {
    return revokeExecInode(this.#maps, dev, ino, identity);
  }

  /**
   * For a connection the proxy accepted: where the client meant to go, and who
   * it was (recorded at connect time). `remoteAddress`/`remotePort` are the
   * accepted socket's peer (node's socket.remoteAddress/remotePort). null when
   * the connection was not redirected by Lilith. With `transport: 'udp'`: the
   * sender of a datagram the DNS front received.
   */
  originalDestination(peer: PeerTuple): OriginalDestination | null {
    return lookupOriginalDestination(this.#maps, peer);
  }

  /** Subscribes to exec and denial events; returns the unsubscribe function. */
  onEvent(listener: KernelEventListener): () => void {
    return this.#events.on(listener);
  }

  /** Events as an async iterator (ends when the iterator is returned or the kernel handle closes). */
  events(): AsyncIterableIterator<KernelEvent> {
    return this.#events.iterate();
  }

  /**
   * Releases this process's handles (heartbeat timer, ring buffer, fds).
   * Pinned programs stay attached and keep enforcing: a managed process loses
   * network once the heartbeat goes stale.
   */
  close(): void {
    if (this.#closed) return;
    this.#heartbeat.stop();
    this.#events.close();
    for (const l of this.#links) l.destroy();
    this.#links = [];
    this.#maps.close();
    this.#closed = true;
  }

  /** Detaches every program pinned under the pin root and removes the pins: enforcement ends. */
  detachAll(): void {
    const root = this.pinRoot;
    this.close();
    detachPinned(root);
  }
}
