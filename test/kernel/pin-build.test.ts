// Re-adoption only of this build's programs, on this host's kernel (cgroup-only):
// a "previous daemon" attaches and pins programs from a differing object (the
// same source compiled for another BPF CPU version: other instructions, another
// tag), then a restarted one attaches with this build's objects. It must refuse
// to adopt the foreign program, replace it new-before-old (one program on the
// hook afterwards, enforcement continuous), adopt the ones that match, and say so.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { attach, describeReplacedPin, detachPinned, type Kernel } from '../../bpf/index.js';
import { BpfLink } from '../../bpf/loader.js';
import {
  fakeProxy,
  makeCgroup,
  makePinRoot,
  probe,
  probeBinary,
  repoRoot,
  sleep,
  runProbe,
  type FakeProxy,
  type TestCgroup,
} from '../../testkit/kernel.js';

const FOREIGN = 'lil_cg_sock'; // cgroup/sock_create, from cgroup_sock.bpf.o
let proxy: FakeProxy;
let agent: TestCgroup;
let pinRoot: string;
let variantDir: string;
const kernels: Kernel[] = [];

/** The same source as bpf/build/cgroup_sock.bpf.o, built for BPF ISA v3 (the Makefile uses clang's default). */
function buildVariant(dir: string): void {
  for (const f of readdirSync(join(repoRoot, 'bpf/build')))
    if (f.endsWith('.bpf.o')) copyFileSync(join(repoRoot, 'bpf/build', f), join(dir, f));
  const arch = execFileSync('uname', ['-m'], { encoding: 'utf8' }).trim();
  execFileSync('clang', [
    '-g',
    '-O2',
    '-target',
    'bpf',
    '-mcpu=v3',
    '-D__TARGET_ARCH_x86',
    '-Wno-unused-function',
    `-I${join(repoRoot, 'bpf/build')}`,
    `-I${join(repoRoot, 'bpf/src')}`,
    `-I/usr/include/${arch}-linux-gnu`,
    '-c',
    join(repoRoot, 'bpf/src/cgroup_sock.bpf.c'),
    '-o',
    join(dir, 'cgroup_sock.bpf.o'),
  ]);
}

const config = (objectDir?: string) => ({
  cgroupPath: agent.dir,
  pinRoot,
  mode: 'cgroup-only' as const,
  proxy: { address: '127.0.0.1', port: proxy.port, dnsPort: proxy.dnsPort },
  ...(objectDir ? { objectDir } : {}),
});

const pinnedTag = (program: string): string => {
  const l = BpfLink.openPinned(join(pinRoot, 'links', program));
  try {
    return l.programInfo().tag;
  } finally {
    l.destroy();
  }
};

/** Programs attached to the agent cgroup for sock_create, as bpftool sees them. */
function sockCreatePrograms(): number {
  const out = JSON.parse(execFileSync('bpftool', ['cgroup', 'show', agent.dir, '-j'], { encoding: 'utf8' })) as Array<{
    attach_type: string;
  }>;
  return out.filter((p) => p.attach_type === 'cgroup_inet_sock_create' || p.attach_type === 'sock_create').length;
}

before(async () => {
  execFileSync('make', ['-s', '-C', join(repoRoot, 'bpf')], { stdio: 'inherit' });
  probeBinary(true);
  proxy = await fakeProxy(() => kernels.at(-1));
  agent = makeCgroup();
  pinRoot = makePinRoot();
  variantDir = mkdtempSync(join(tmpdir(), 'lilith-variant-'));
  buildVariant(variantDir);
});

after(async () => {
  for (const k of kernels) k.close();
  detachPinned(pinRoot);
  agent?.remove();
  await proxy?.close();
  rmSync(variantDir, { recursive: true, force: true });
});

test('a restarted enforcer refuses to adopt a pinned program of another build and replaces it without a gap', async () => {
  // The previous daemon: programs pinned from the differing object, then it goes away (pins stay).
  const previous = await attach(config(variantDir));
  previous.registerIdentity({ cgroup: agent.dir }, 5);
  previous.startHeartbeat();
  const foreignTag = pinnedTag(FOREIGN);
  previous.close();
  assert.equal(sockCreatePrograms(), 1);

  // A managed process keeps creating sockets and connecting through the restart: never refused.
  const during = runProbe(['cg', agent.procs, 'watch', '4000', '198.51.100.1', '443'], { timeoutMs: 15_000 });
  await sleep(300);
  const started = Date.now();
  const k = await attach(config());
  kernels.push(k);
  k.startHeartbeat();
  const attachMs = Date.now() - started;

  assert.equal(k.adopted, false, 'not everything was adopted');
  assert.equal(k.replacedPins.length, 1, JSON.stringify(k.replacedPins));
  const [rp] = k.replacedPins;
  assert.equal(rp!.program, FOREIGN);
  assert.equal(rp!.pinnedTag, foreignTag);
  assert.notEqual(rp!.buildTag, foreignTag);
  assert.match(
    describeReplacedPin(rp!),
    new RegExp(`refused to re-adopt pinned program ${FOREIGN}: it runs tag ${foreignTag}, this build loads ${rp!.buildTag}`),
  );
  // The pin now runs this build's program, and the foreign one is gone from the hook.
  assert.equal(pinnedTag(FOREIGN), rp!.buildTag);
  assert.equal(sockCreatePrograms(), 1, 'the old program was detached once the new one was attached');
  const lines = await during;
  const watch = lines.at(-1) as unknown as { attempts: number; denied: number } | undefined;
  assert.ok(watch && watch.attempts > 0, JSON.stringify(lines));
  assert.equal(watch.denied, 0, `no connect was refused across the replacement (${attachMs} ms attach): ${JSON.stringify(watch)}`);
  // Still enforcing: a managed connect lands on the proxy.
  const r = await probe(['cg', agent.procs, 'connect', '203.0.113.5', '443']);
  assert.equal(r.reply, 'proxy 203.0.113.5:443', JSON.stringify(r));

  // The next restart finds only this build's programs: everything adopted, nothing replaced.
  k.close();
  kernels.pop();
  const again = await attach(config());
  kernels.push(again);
  assert.deepEqual(again.replacedPins, []);
  assert.equal(again.adopted, true);
});
