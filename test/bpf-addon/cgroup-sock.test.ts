// attachCgroup with other cgroup program types: sock_create (deny raw sockets)
// and sockops (record established connections), observed from real processes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { BpfObject, type BpfLink } from '../../bpf/loader.js';
import { buildTestObjects, testObjectPath } from '../../testkit/bpf-objects.js';
import { connectFrom, listen, makeCgroup, removeCgroup, u32, type Listener } from './helpers.js';

let obj: BpfObject;
let links: BpfLink[] = [];
let cgroup: string;
let server: Listener;

// Perl can open raw sockets; Node cannot. Prints "ok" or the errno number.
const RAW = `use Socket; if (socket(my $s, PF_INET, SOCK_RAW, 1)) { print "ok" } else { print $!+0 }`;

function rawSocketFrom(cg: string | null): string {
  const cmd = cg ? `echo $$ > ${join(cg, 'cgroup.procs')} && exec perl -e '${RAW}'` : `exec perl -e '${RAW}'`;
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

before(async () => {
  buildTestObjects(['test_sock']);
  server = await listen();
  cgroup = makeCgroup();
  obj = BpfObject.open(testObjectPath('test_sock'), { pinRoot: '/nonexistent-no-pinned-maps' });
  obj.load();
  links = obj.programs().map((p) => p.attachCgroup(cgroup));
});

after(async () => {
  for (const l of links) l.destroy();
  obj?.close();
  if (cgroup) removeCgroup(cgroup);
  await server?.close();
});

test('sock_create program denies raw sockets in the cgroup and only there', () => {
  assert.deepEqual(
    links.map((l) => l.info().attachType),
    [2 /* CGROUP_INET_SOCK_CREATE */, 3 /* CGROUP_SOCK_OPS */],
  );
  assert.equal(rawSocketFrom(cgroup), '1' /* EPERM */);
  assert.equal(rawSocketFrom(null), 'ok');
});

test('sockops program records the established connection of a managed process', async () => {
  const r = await connectFrom(cgroup, '127.0.0.1', server.port);
  assert.equal(r.reply, `ok ${server.port}`);
  const clientPort = server.peers.at(-1)!;
  const remote = obj.map('test_estab').lookup(u32(clientPort));
  assert.equal(remote?.readUInt32LE(0), server.port);
  // An unmanaged connection is not seen.
  const u = await connectFrom(null, '127.0.0.1', server.port);
  assert.equal(u.reply, `ok ${server.port}`);
  assert.equal(obj.map('test_estab').lookup(u32(server.peers.at(-1)!)), null);
});
