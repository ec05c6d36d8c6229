// A RingBuffer must not keep the process alive once closed (or when unref'ed):
// run each case in a separate process and require that it exits by itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ensureBpffs } from '../../bpf/mounts.js';
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
