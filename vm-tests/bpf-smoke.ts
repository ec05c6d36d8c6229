// Guest-side helpers shared by the smoke and no-bpf-lsm scenarios: check the artifacts and set up a rig, attach the smoke BPF-LSM
// program (through vm-tests/loader's lilith-vm-attach until the libbpf addon takes over), mark a
// cgroup as managed, read the hit counters, and make real connect() calls from child processes.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, rmdirSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Checks } from './scenario.js';

const execFileP = promisify(execFile);

export interface SmokeRig {
  object: string;
  attacher: string;
  /** bpffs directory for the program's pins (removed after). */
  pinDir: string;
  /** A fresh cgroup to mark as managed (removed after). */
  cg: { dir: string; id: bigint };
  /** A listener on 127.0.0.1 to connect() to. */
  port: number;
}

/**
 * Checks that the smoke object and attacher are built (one check each) and, if they are,
 * runs `body` with a pin directory, a cgroup and a listener named after `name`, all torn
 * down after (the pins first, so the hook is gone before the cgroup is).
 */
export async function withSmokeRig(c: Checks, projectRoot: string, name: string, body: (rig: SmokeRig) => Promise<void>): Promise<void> {
  const { object, attacher } = smokeArtifacts(projectRoot);
  for (const f of [object, attacher]) {
    const built = existsSync(f);
    if (!c.expect(`${f.slice(projectRoot.length + 1)} is built`, built, built ? 'present' : 'missing: run scripts/build.sh')) return;
  }
  const pinDir = join('/sys/fs/bpf', `${name}-${process.pid}`);
  const cg = makeCgroup(`${name}-${process.pid}`);
  const { server, port } = await listen();
  try {
    await body({ object, attacher, pinDir, cg, port });
  } finally {
    detach(pinDir);
    server.close();
    cg.remove();
  }
}

export function smokeArtifacts(projectRoot: string) {
  return {
    object: join(projectRoot, 'testkit', 'bpf', 'build', 'smoke_lsm.bpf.o'),
    attacher: join(projectRoot, 'vm-tests', 'loader', 'build', 'lilith-vm-attach'),
  };
}

export type AttachResult =
  | { ok: true; programs: { name: string; id: number; link: string }[] }
  | { ok: false; step: string; name: string; errno: number; error: string; stderr: string };

/** Loads `object`, pins maps and links under `pinDir`; the attachment lasts until pinDir is removed. */
export async function attachPinned(attacher: string, object: string, pinDir: string): Promise<AttachResult> {
  let stdout = '';
  let stderr = '';
  try {
    ({ stdout, stderr } = await execFileP(attacher, [object, pinDir], { timeout: 60_000 }));
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    stdout = e.stdout ?? '';
    stderr = e.stderr ?? e.message;
  }
  const last = stdout.trim().split('\n').pop() ?? '';
  try {
    const parsed = JSON.parse(last) as AttachResult;
    return parsed.ok ? parsed : { ...parsed, stderr: stderr.trim().slice(-1500) };
  } catch {
    return { ok: false, step: 'run', name: attacher, errno: 0, error: `no JSON from ${attacher}: ${last || stderr}`, stderr };
  }
}

export function detach(pinDir: string): void {
  rmSync(pinDir, { recursive: true, force: true });
}

/** A cgroup2 directory whose id (= its inode number) marks processes as managed. */
export function makeCgroup(name: string): { dir: string; id: bigint; remove(): void } {
  const dir = join('/sys/fs/cgroup', name);
  if (!existsSync(dir)) mkdirSync(dir);
  const id = statSync(dir, { bigint: true }).ino;
  return {
    dir,
    id,
    remove: () => {
      try {
        rmdirSync(dir);
      } catch {
        /* still populated by a straggler; the VM is discarded anyway */
      }
    },
  };
}

const u64le = (v: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return [...b].map((x) => x.toString(16).padStart(2, '0'));
};

export async function markManaged(pinDir: string, cgroupId: bigint): Promise<void> {
  await execFileP(
    'bpftool',
    ['map', 'update', 'pinned', join(pinDir, 'smoke_managed'), 'key', 'hex', ...u64le(cgroupId), 'value', 'hex', '01'],
    { timeout: 30_000 },
  );
}

/** smoke_hits: denied = connects denied for managed cgroups, seen = every connect the hook saw. */
export async function readHits(pinDir: string): Promise<{ denied: number; seen: number }> {
  const { stdout } = await execFileP('bpftool', ['-j', 'map', 'dump', 'pinned', join(pinDir, 'smoke_hits')], { timeout: 30_000 });
  const entries = JSON.parse(stdout) as { key: unknown; value: unknown; formatted?: { key: number; value: number } }[];
  const num = (v: unknown): number => {
    if (typeof v === 'number') return v;
    if (Array.isArray(v)) return Number(Buffer.from(v.map((h: string) => parseInt(h, 16))).readBigUInt64LE());
    throw new Error(`unexpected bpftool value ${JSON.stringify(v)}`);
  };
  const at = (i: number) => {
    const e = entries.find((x) => (x.formatted ? x.formatted.key : num(x.key)) === i);
    if (!e) throw new Error(`smoke_hits has no key ${i}: ${stdout}`);
    return e.formatted ? e.formatted.value : num(e.value);
  };
  return { denied: at(0), seen: at(1) };
}

export async function listen(): Promise<{ server: Server; port: number }> {
  const server = createServer((s) => s.destroy());
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  if (!addr || typeof addr === 'string') throw new Error('listener has no port');
  return { server, port: addr.port };
}

export interface ConnectOutcome {
  ok: boolean;
  code?: string;
  message?: string;
}

// Runs in a fresh node process: optionally joins a cgroup (so the kernel sees it as managed),
// then connect()s to the listener and reports the outcome as JSON.
const CONNECT_CHILD = `
const [port, procs] = process.argv.slice(1);
if (procs) require('fs').writeFileSync(procs, String(process.pid));
const s = require('net').connect(Number(port), '127.0.0.1');
s.on('connect', () => { console.log(JSON.stringify({ ok: true })); s.destroy(); });
s.on('error', (e) => console.log(JSON.stringify({ ok: false, code: e.code, message: e.message })));
`;

/** connect() from a new process, inside `cgroupDir` when given. */
export async function connectFrom(port: number, cgroupDir?: string): Promise<ConnectOutcome> {
  const args = ['-e', CONNECT_CHILD, String(port), cgroupDir ? join(cgroupDir, 'cgroup.procs') : ''];
  const { stdout } = await execFileP(process.execPath, args, { timeout: 30_000 });
  return JSON.parse(stdout.trim().split('\n').pop() ?? '') as ConnectOutcome;
}

export const describe = (o: ConnectOutcome) => (o.ok ? 'connected' : `${o.code}: ${o.message}`);
