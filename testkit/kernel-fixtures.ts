// More fixtures shared by the host kernel tests and the VM scenarios: probe copies
// (distinct inodes to register as identities), an attached kernel that records its
// events, waiting for an event, unix socket peers, and the daemon-lite process.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { attach, type IdentitySelector, type Kernel, type KernelConfig, type KernelEvent } from '../bpf/index.js';
import { probeBinary, repoRoot, sleep } from './kernel.js';

/** Copies of lilith-probe in `dir` (one inode each), executable; paths in the order of `names`. */
export function probeCopies(dir: string, names: readonly string[]): string[] {
  const bin = probeBinary(false);
  return names.map((n) => {
    const p = join(dir, n);
    copyFileSync(bin, p);
    chmodSync(p, 0o755);
    return p;
  });
}

export interface RecordingKernel {
  kernel: Kernel;
  /** Every event the kernel reported since attach. */
  events: KernelEvent[];
  /** Stops recording and detaches everything. */
  detach(): void;
}

/** Attaches with `config`, records its events (into `events`), starts the heartbeat and registers `identities`. */
export async function attachRecording(
  config: KernelConfig,
  identities: ReadonlyArray<readonly [IdentitySelector, number]> = [],
  events: KernelEvent[] = [],
): Promise<RecordingKernel> {
  const kernel = await attach(config);
  const off = kernel.onEvent((e) => events.push(e));
  kernel.startHeartbeat();
  for (const [selector, identity] of identities) kernel.registerIdentity(selector, identity);
  return {
    kernel,
    events,
    detach() {
      off();
      kernel.detachAll();
    },
  };
}

/** BPF-LSM mode on `cgroupPath`, intercepted traffic to `proxy`, a 15 s heartbeat TTL (VM scenarios are slow). */
export function lsmConfig(pinRoot: string, cgroupPath: string, proxy: { port: number; dnsPort: number }): KernelConfig {
  return {
    pinRoot,
    mode: 'bpf-lsm',
    cgroupPath,
    proxy: { address: '127.0.0.1', port: proxy.port, dnsPort: proxy.dnsPort },
    heartbeatTtlMs: 15000,
  };
}

/** The first event in `events` matching `pred`, waiting up to `timeoutMs` for it to arrive. */
export async function waitForEvent(
  events: readonly KernelEvent[],
  pred: (e: KernelEvent) => boolean,
  { timeoutMs = 2000, stepMs = 25 } = {},
): Promise<KernelEvent | undefined> {
  for (let t = 0; t < timeoutMs; t += stepMs) {
    const e = events.find(pred);
    if (e) return e;
    await sleep(stepMs);
  }
  return undefined;
}

/** A unix stream listener at `path` that accepts and drains. */
export function unixListener(path: string): Promise<Server> {
  const s = createServer((c) => c.on('error', () => {}).resume());
  return new Promise((resolve, reject) => s.once('error', reject).listen(path, () => resolve(s)));
}

/**
 * A datagram receiver at `dgramPath` (like /dev/log) and an abstract stream listener
 * bound with exactly `abstractName` (node pads abstract names to 108 bytes, and its
 * dgram has no AF_UNIX), in a python helper process. Resolves once the datagram
 * socket exists; `close` kills the helper.
 */
export async function unixPeers(dgramPath: string, abstractName: string): Promise<{ close(): void }> {
  const src = [
    'import socket,sys,threading,time',
    'd=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM); d.bind(sys.argv[1])',
    'a=socket.socket(socket.AF_UNIX,socket.SOCK_STREAM); a.bind(b"\\0"+sys.argv[2].encode()); a.listen(64)',
    'threading.Thread(target=lambda: [d.recv(64) for _ in iter(int,1)], daemon=True).start()',
    'threading.Thread(target=lambda: [a.accept()[0].close() for _ in iter(int,1)], daemon=True).start()',
    'time.sleep(600)',
  ].join('\n');
  const helper = spawn('/usr/bin/python3', ['-c', src, dgramPath, abstractName], { stdio: 'ignore' });
  helper.unref();
  for (let i = 0; i < 600 && !existsSync(dgramPath) && helper.exitCode === null; i++) await sleep(50);
  return { close: () => void helper.kill('SIGKILL') };
}

export interface DaemonLite<R> {
  child: ChildProcess;
  /** CLOCK_MONOTONIC when it was spawned, and when it said ready. */
  startedNs: bigint;
  readyNs: bigint;
  /** What it printed on its `ready` line. */
  ready: R;
}

/**
 * Starts testkit/daemon-lite with `config`; resolves when it prints `ready {…}`, rejects if
 * it exits first. `onSpawn` sees the child at once (to kill one that never gets ready).
 */
export function startDaemonLite<R = unknown>(config: object, onSpawn?: (child: ChildProcess) => void): Promise<DaemonLite<R>> {
  return new Promise((resolve, reject) => {
    const startedNs = process.hrtime.bigint();
    const child = spawn(process.execPath, [join(repoRoot, 'dist', 'testkit', 'daemon-lite.js'), JSON.stringify(config)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    onSpawn?.(child);
    let out = '';
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /^ready (.*)$/m.exec(out);
      if (m) resolve({ child, startedNs, readyNs: process.hrtime.bigint(), ready: JSON.parse(m[1]!) as R });
    });
    child.on('exit', (code) => reject(new Error(`daemon-lite exited ${code}: ${err.trim()}`)));
  });
}
