// Fixtures for the kernel tests (host, and the VM scenarios): a fake proxy
// (TCP listener that asks the kernel for each connection's original
// destination, and a DNS responder), fresh cgroups and pin roots, and the
// lilith-probe program run as a real child process.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync, readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureBpffs, ensureCgroup2 } from '../bpf/mounts.js';
import type { Kernel, OriginalDestination } from '../bpf/index.js';

/** Repository root (dist/test/kernel/helpers.js → ../../..). */
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The lilith-probe binary; built on the host when `build` (the VM guest only reads it). */
export function probeBinary(build = true): string {
  const dir = join(repoRoot, 'testkit', 'progs');
  if (build) execFileSync('make', ['-s', '-C', dir], { stdio: 'inherit' });
  const p = join(dir, 'lilith-probe');
  if (!existsSync(p)) throw new Error(`${p} is not built: run make -C testkit/progs on the host`);
  return p;
}

let seq = 0;
const tag = (what: string): string => `lilith-kt-${what}-${process.pid}-${++seq}`;

export interface TestCgroup {
  readonly dir: string;
  readonly procs: string;
  remove(): void;
}

/** A fresh cgroup v2 directory under the cgroup2 root (or under `parent`). */
export function makeCgroup(parent?: string): TestCgroup {
  const dir = join(parent ?? ensureCgroup2(), tag('cg'));
  mkdirSync(dir);
  return {
    dir,
    procs: join(dir, 'cgroup.procs'),
    remove() {
      if (!existsSync(dir)) return;
      // Stragglers (daemonized grandchildren) are moved out so the directory can go.
      const root = join(ensureCgroup2(), 'cgroup.procs');
      for (const pid of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {}
        try {
          execFileSync('sh', ['-c', `echo ${pid} > ${root}`]);
        } catch {}
      }
      for (let i = 0; i < 50; i++) {
        try {
          rmdirSync(dir);
          return;
        } catch {
          execFileSync('sleep', ['0.05']);
        }
      }
    },
  };
}

/** A pin root private to this test run. */
export function makePinRoot(): string {
  return join(ensureBpffs(), tag('pins'));
}

export interface ProbeLine {
  op: string;
  ok: boolean;
  errno: number;
  err: string;
  pid: number;
  peer?: string;
  reply?: string;
  from?: string;
  sent?: boolean;
}

/** Runs lilith-probe with `args`; resolves with the JSON lines it printed. */
export function runProbe(args: string[], opts: { timeoutMs?: number; stdin?: string } = {}): Promise<ProbeLine[]> {
  return new Promise((resolve, reject) => {
    // A leading absolute path names another copy of the probe (a different inode).
    const [bin, argv] = args[0]?.startsWith('/') ? [args[0], args.slice(1)] : [probeBinary(false), args];
    const child = spawn(bin, argv, { stdio: [opts.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 15000);
    child.on('error', reject);
    if (child.stdin) {
      child.stdin.on('error', () => {}); // the probe may exit before reading
      child.stdin.end(opts.stdin);
    }
    child.on('close', () => {
      clearTimeout(timer);
      try {
        resolve(
          out
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as ProbeLine),
        );
      } catch (e) {
        reject(new Error(`probe ${args.join(' ')} printed ${JSON.stringify(out)}: ${(e as Error).message}`));
      }
    });
  });
}

/** The last line of a probe run (the leaf operation's outcome); a run that printed nothing is a failed line with errno -1. */
export async function probe(args: string[]): Promise<ProbeLine> {
  const lines = await runProbe(args);
  return lines.at(-1) ?? { op: 'none', ok: false, errno: -1, err: `probe ${args.join(' ')} printed nothing`, pid: 0 };
}

export interface Accepted {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly original: OriginalDestination | null;
  readonly firstLine: string;
}

export interface FakeProxy {
  readonly port: number;
  readonly dnsPort: number;
  readonly accepted: Accepted[];
  readonly dnsQueries: { from: string }[];
  close(): Promise<void>;
}

/**
 * A stand-in for the dataplane: TCP on 127.0.0.1 (answers "proxy <original>"
 * after asking the kernel, as the real proxy does) and UDP DNS (answers "dns").
 * `kernel` is read at accept time, so it can be attached after listening.
 */
export async function fakeProxy(kernel: () => Kernel | undefined): Promise<FakeProxy> {
  const accepted: Accepted[] = [];
  const dnsQueries: { from: string }[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    const original = kernel()?.originalDestination(s) ?? null;
    s.once('data', (d) => {
      accepted.push({ remoteAddress: s.remoteAddress ?? '', remotePort: s.remotePort ?? 0, original, firstLine: d.toString().trim() });
      s.end(original ? `proxy ${original.address}:${original.port}\n` : 'proxy unknown\n');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const dns: UdpSocket = createSocket('udp4');
  dns.on('message', (_m, rinfo) => {
    dnsQueries.push({ from: `${rinfo.address}:${rinfo.port}` });
    dns.send('dns', rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => dns.bind(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    dnsPort: dns.address().port,
    accepted,
    dnsQueries,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        dns.close();
        server.close(() => r());
      }),
  };
}

/** A plain TCP listener answering "direct" (a destination unmanaged processes reach). */
export async function directListener(host = '127.0.0.1'): Promise<{ port: number; close(): Promise<void> }> {
  const server = createServer((s) => {
    s.on('error', () => {});
    s.once('data', () => s.end('direct\n'));
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  return { port: (server.address() as { port: number }).port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
