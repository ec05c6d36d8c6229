// A RingBuffer must not keep the process alive once closed (or when unref'ed):
// run each case in a separate process and require that it exits by itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ensureBpffs, ensureCgroup2 } from '../../bpf/mounts.js';
import { distModule, runNode, testObjects } from './helpers.js';

const objPath = testObjects().connect;

test('a closed ring buffer lets the process exit', async () => {
  const r = await runNode(`
    import { BpfObject, RingBuffer } from ${JSON.stringify(distModule('bpf/loader.js'))};
    import { mkdirSync, rmSync } from 'node:fs';
    const pins = ${JSON.stringify(ensureBpffs())} + '/lilith-rb-' + process.pid; mkdirSync(pins);
    const obj = BpfObject.open(${JSON.stringify(objPath)}, { pinRoot: pins });
    obj.load();
    const rb = new RingBuffer(obj.map('test_events'), () => {});
    setTimeout(() => { rb.close(); obj.close(); rmSync(pins, { recursive: true }); console.log('closed'); }, 100);
    process.on('exit', () => console.log('exit'));
  `);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split('\n'), ['closed', 'exit']);
});

test('an unref()ed open ring buffer does not keep the process alive', async () => {
  const r = await runNode(`
    import { BpfObject, RingBuffer } from ${JSON.stringify(distModule('bpf/loader.js'))};
    import { mkdirSync, rmSync } from 'node:fs';
    const pins = ${JSON.stringify(ensureBpffs())} + '/lilith-rb-' + process.pid; mkdirSync(pins);
    const obj = BpfObject.open(${JSON.stringify(objPath)}, { pinRoot: pins });
    obj.load();
    rmSync(pins, { recursive: true });
    const rb = new RingBuffer(obj.map('test_events'), () => {}, { ref: false });
    process.on('exit', () => console.log('exit open=' + !rb.closed));
  `);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'exit open=true');
});

test('ring buffers opened, closed from inside their own handler, and collected do not crash the process', async () => {
  // A managed connect produces events; each consumer closes itself from its
  // handler on the first one, then everything is garbage-collected.
  const r = await runNode(
    `
    import { BpfObject, RingBuffer } from ${JSON.stringify(distModule('bpf/loader.js'))};
    import { mkdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
    import { execFileSync } from 'node:child_process';
    const pins = ${JSON.stringify(ensureBpffs())} + '/lilith-rb-' + process.pid; mkdirSync(pins);
    const cg = ${JSON.stringify(ensureCgroup2())} + '/lilith-rb-' + process.pid; mkdirSync(cg);
    const obj = BpfObject.open(${JSON.stringify(objPath)}, { pinRoot: pins });
    obj.load();
    const link = obj.program('test_connect4').attachCgroup(cg);
    let closedInHandler = 0;
    for (let round = 0; round < 5; round++) {
      const got = await new Promise((resolve) => {
        const rb = new RingBuffer(obj.map('test_events'), () => { rb.close(); closedInHandler++; resolve(true); });
        // Two connects from a process in the cgroup: two events, the handler sees one.
        execFileSync(process.execPath, ['-e', \`require('fs').writeFileSync(process.argv[1], String(process.pid)); const net = require('net'); let n = 2; for (let i = 0; i < 2; i++) net.connect(1, '127.0.0.1').on('error', () => { if (!--n) process.exit(0); });\`, cg + '/cgroup.procs']);
      });
      for (let i = 0; i < 50; i++) { const rb = new RingBuffer(obj.map('test_events'), () => {}); rb.close(); }
      globalThis.gc();
      await new Promise((r) => setTimeout(r, 10));
    }
    link.destroy(); obj.close(); rmSync(pins, { recursive: true }); rmdirSync(cg);
    console.log('closedInHandler=' + closedInHandler);
  `,
    60000,
    ['--expose-gc'],
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'closedInHandler=5');
});
