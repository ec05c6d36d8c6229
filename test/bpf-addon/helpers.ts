// Real-kernel fixtures for the loader tests: fresh cgroup v2 directories, bpffs
// pin directories, a TCP listener, and child processes that move themselves into
// a cgroup and then connect. Everything created is removed by cleanup().
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, rmdirSync, existsSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { ensureBpffs, ensureCgroup2 } from '../../bpf/mounts.js';
import { repoRoot } from '../../bpf/addon.js';
import { objectPath } from '../../bpf/loader.js';
import { buildTestObjects, testObjectPath } from '../../testkit/bpf-objects.js';

let seq = 0;
const tag = (): string => `lilith-test-${process.pid}-${++seq}`;

/** Builds the test BPF objects (make is a no-op when they are current); returns their paths. */
export function testObjects(): { connect: string; reject: string; probe: string } {
  buildTestObjects(['test_connect', 'test_reject']);
  return { connect: testObjectPath('test_connect'), reject: testObjectPath('test_reject'), probe: objectPath('lsm_probe') };
}

/** A fresh cgroup v2 directory; remove with removeCgroup() once its processes have exited. */
export function makeCgroup(): string {
  const dir = join(ensureCgroup2(), tag());
  mkdirSync(dir);
  return dir;
}

export function removeCgroup(dir: string): void {
  if (existsSync(dir)) rmdirSync(dir);
}

/** A fresh directory in bpffs for pins. */
export function makePinDir(): string {
  const dir = join(ensureBpffs(), tag());
  mkdirSync(dir);
  return dir;
}

export function removePinDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export interface Listener {
  readonly port: number;
  /** What clients sent, one entry per connection (the child sends its pid). */
  readonly received: string[];
  /** Client (remote) ports, one per accepted connection, in accept order. */
  readonly peers: number[];
  close(): Promise<void>;
}

/** A TCP listener on 127.0.0.1:0 that records the first line each client sends and answers "ok <port>". */
export async function listen(): Promise<Listener> {
  const received: string[] = [];
  const peers: number[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    peers.push(s.remotePort ?? 0);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.once('data', (d) => {
      received.push(d.toString().trim());
      s.end(`ok ${port}\n`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    received,
    peers,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

export interface ConnectResult {
  readonly pid: number;
  /** The server's reply ("ok <listener port>") when the connection worked. */
  readonly reply?: string;
  /** errno code when it did not (ECONNREFUSED, ETIMEDOUT, ...). */
  readonly error?: string;
}

// The child joins the cgroup itself (cgroup.procs moves the whole process) before
// opening any socket, then connects, sends its pid and prints the outcome as JSON.
const CHILD = `
const [procs, host, port] = process.argv.slice(1);
if (procs) require('fs').writeFileSync(procs, String(process.pid));
const s = require('net').connect(Number(port), host);
let reply = '';
s.setTimeout(3000, () => { console.log(JSON.stringify({ pid: process.pid, error: 'ETIMEDOUT' })); process.exit(0); });
s.on('connect', () => s.write(process.pid + '\\n'));
s.on('data', (d) => { reply += d; });
s.on('end', () => { console.log(JSON.stringify({ pid: process.pid, reply: reply.trim() })); process.exit(0); });
s.on('error', (e) => { console.log(JSON.stringify({ pid: process.pid, error: e.code })); process.exit(0); });
`;

/** Runs a real child process (in `cgroup` when given) that connects to host:port. */
export function connectFrom(cgroup: string | null, host: string, port: number): Promise<ConnectResult> {
  return new Promise((resolve, reject) => {
    const args = ['-e', CHILD, cgroup ? join(cgroup, 'cgroup.procs') : '', host, String(port)];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('exit', (code) => {
      try {
        resolve(JSON.parse(out) as ConnectResult);
      } catch {
        reject(new Error(`connect child exited ${code} with output ${JSON.stringify(out)}`));
      }
    });
  });
}

/** Runs a node ESM script in a separate process; resolves with its exit code and stdout. */
export function runNode(
  script: string,
  timeoutMs = 20000,
  nodeArgs: string[] = [],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeArgs, '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    // A hung child fails the test through a null exit code instead of hanging the suite.
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};

export const u64 = (n: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(n);
  return b;
};

/** Absolute path of a compiled module of this repo, for scripts run in child processes. */
export const distModule = (rel: string): string => join(repoRoot(), 'dist', rel);
