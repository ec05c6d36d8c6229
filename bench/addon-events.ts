// Measures the addon on the real kernel: map operations against the floor of an
// addon call that enters the kernel (close(-1) → EBADF), and ring-buffer
// delivery latency (kernel bpf_ktime_get_ns stamp → JS handler). Run as root:
//   node dist/bpf/addon/measure.js [--ops N] [--events N]
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { native } from '../bpf/addon.js';
import { BpfObject, RingBuffer, monotonicNs } from '../bpf/loader.js';
import { buildTestObjects, testObjectPath } from '../testkit/bpf-objects.js';
import { ensureBpffs, ensureCgroup2 } from '../bpf/mounts.js';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const u32 = (n: number): Buffer => Buffer.from(new Uint32Array([n]).buffer);
const u64 = (n: bigint): Buffer => Buffer.from(new BigUint64Array([n]).buffer);

function perOp(n: number, f: (i: number) => void): number {
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) f(i);
  return Number(process.hrtime.bigint() - t) / n;
}

const pct = (xs: number[], p: number): number => xs[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;

async function main(): Promise<void> {
  const ops = arg('--ops', 100000);
  const events = arg('--events', 2000);
  const pins = join(ensureBpffs(), `lilith-measure-${process.pid}`);
  const cg = join(ensureCgroup2(), `lilith-measure-${process.pid}`);
  mkdirSync(pins);
  mkdirSync(cg);
  buildTestObjects(['test_connect']);
  const obj = BpfObject.open(testObjectPath('test_connect'), { pinRoot: pins });
  try {
    obj.load();
    obj.map('test_cfg').update(u32(0), u32(0)); // count and report, no rewrite
    const counts = obj.map('test_counts');
    const n = native();
    const floor = perOp(ops, () => n.closeFd(-1));
    const upd = perOp(ops, (i) => counts.update(u32((i % 1000) + 1), u64(BigInt(i))));
    const key = u32(5);
    const look = perOp(ops, () => counts.lookup(key));
    const keys = perOp(20, () => counts.keys());
    for (const k of counts.keys()) counts.delete(k);
    console.log(`addon call + syscall floor (close(-1)): ${floor.toFixed(0)} ns`);
    console.log(
      `map update: ${upd.toFixed(0)} ns/op, lookup: ${look.toFixed(0)} ns/op, keys() over 1000 entries: ${(keys / 1000).toFixed(0)} µs`,
    );

    // One child in the cgroup connects to a closed port in a loop; each connect
    // runs the program, which stamps an event. The listener-free main thread only
    // consumes the ring.
    const lat: number[] = [];
    const rb = new RingBuffer(obj.map('test_events'), (d) => lat.push(Number(monotonicNs() - d.readBigUInt64LE(16))));
    const link = obj.program('test_connect4').attachCgroup(cg);
    const child = spawn(
      process.execPath,
      [
        '-e',
        `
      require('fs').writeFileSync(process.argv[1], String(process.pid));
      const net = require('net'); let left = ${events};
      (function go() { if (!left--) return; const s = net.connect(1, '127.0.0.1'); s.on('error', () => { s.destroy(); go(); }); s.on('connect', () => { s.destroy(); go(); }); })();
    `,
        join(cg, 'cgroup.procs'),
      ],
      { stdio: 'inherit' },
    );
    await new Promise((r) => child.on('exit', r));
    for (let i = 0; i < 100 && lat.length < events; i++) await new Promise((r) => setTimeout(r, 10));
    rb.close();
    link.destroy();
    lat.sort((a, b) => a - b);
    console.log(
      `ring buffer: ${lat.length}/${events} events, kernel→JS latency p50 ${(pct(lat, 0.5) / 1000).toFixed(0)} µs, p99 ${(pct(lat, 0.99) / 1000).toFixed(0)} µs`,
    );
  } finally {
    obj.close();
    rmSync(pins, { recursive: true, force: true });
    rmdirSync(cg);
  }
}

await main();
