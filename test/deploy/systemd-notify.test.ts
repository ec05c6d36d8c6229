// sd_notify as systemd sees it: a real `lilith enforcer` run with NOTIFY_SOCKET
// and WATCHDOG_USEC sends READY=1, then WATCHDOG=1 from its event loop; stopped
// (SIGSTOP: what a ptrace race does), it falls silent for longer than
// WatchdogSec, which is what makes systemd kill and restart it. The receiver is
// a perl datagram socket (perl-base is always on Debian; Node cannot bind unix datagrams).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, it } from 'node:test';
import { generateSigningKey, trustFromKeys } from '../../capsule/index.js';
import { systemdNotifier, watchdogIntervalMs } from '../../enforcer/daemon/systemd-notify.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const dir = mkdtempSync(join(tmpdir(), 'lilith-sdnotify-'));
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** A unix datagram receiver at `path`; every datagram, with its arrival time (ms). */
function receiver(path: string): Promise<{ got: { at: number; msg: string }[] }> {
  const script =
    'use IO::Socket::UNIX; $|=1; my $s=IO::Socket::UNIX->new(Type=>SOCK_DGRAM,Local=>$ARGV[0]) or die "bind: $!"; print "up\\n";' +
    ' while(1){ my $m; $s->recv($m,4096); $m=~s/\\n/|/g; print "$m\\n"; }';
  const child = spawn('perl', ['-e', script, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const got: { at: number; msg: string }[] = [];
  return new Promise((res, rej) => {
    let buf = '';
    child.once('error', rej);
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i = buf.indexOf('\n');
      while (i >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line === 'up') res({ got });
        else got.push({ at: Date.now(), msg: line });
        i = buf.indexOf('\n');
      }
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it('watchdog interval: a quarter of WATCHDOG_USEC, none without it or for another pid', () => {
  assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '1000000' }), 250);
  assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '1000000', WATCHDOG_PID: '7' }, 7), 250);
  assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '1000000', WATCHDOG_PID: '8' }, 7), null);
  assert.equal(watchdogIntervalMs({}), null);
  assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '0' }), null);
  assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: 'soon' }), null);
  assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '1000' }), 10);
});

it('without NOTIFY_SOCKET there is no notifier; a failing send is logged once, not thrown', async () => {
  assert.equal(await systemdNotifier({}, () => {}), null);
  const lines: string[] = [];
  const n = await systemdNotifier({ NOTIFY_SOCKET: '/nonexistent/notify' }, (l) => lines.push(l));
  assert.ok(n);
  n.ready('x');
  n.stopping();
  assert.equal(lines.length, 1, lines.join('\n'));
  assert.match(lines[0]!, /sd_notify to \/nonexistent\/notify failed: sd_notify \/nonexistent\/notify: ENOENT/);
});

it('lilith enforcer: READY=1, WATCHDOG=1 every WatchdogSec/4, silent while stopped, STOPPING=1 on SIGTERM', {
  timeout: 60_000,
}, async () => {
  const sock = join(dir, 'notify.sock');
  const rx = await receiver(sock);
  const trust = join(dir, 'trust.json');
  writeFileSync(trust, JSON.stringify(trustFromKeys([generateSigningKey()], 1)));
  mkdirSync(join(dir, 'drops'));
  const daemon = spawn(
    process.execPath,
    [
      join(ROOT, 'dist/cli/main.js'),
      'enforcer',
      '--capsule-dir',
      join(dir, 'drops'),
      '--trust',
      trust,
      '--state-dir',
      join(dir, 'state'),
      '--admin-socket',
      join(dir, 'admin.sock'),
      '--admin-listen',
      'off',
      '--audit',
      join(dir, 'audit.jsonl'),
      '--no-kernel',
      '--no-dataplane',
    ],
    { env: { ...process.env, NOTIFY_SOCKET: sock, WATCHDOG_USEC: '400000' }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  children.push(daemon);
  let err = '';
  daemon.stderr!.on('data', (d) => (err += d));
  const until = async (pred: () => boolean, ms: number, what: string) => {
    for (const end = Date.now() + ms; !pred(); await sleep(20))
      if (Date.now() > end) assert.fail(`${what}; got ${JSON.stringify(rx.got)}\n${err}`);
  };
  await until(() => rx.got.some((g) => g.msg.startsWith('READY=1')), 30_000, 'no READY=1');
  const ready = rx.got.find((g) => g.msg.startsWith('READY=1'))!;
  assert.match(ready.msg, new RegExp(`MAINPID=${daemon.pid}`));
  await until(() => rx.got.filter((g) => g.msg === 'WATCHDOG=1').length >= 4, 5000, 'fewer than 4 WATCHDOG=1 pings');

  // Stopped, as a ptrace attach/detach race leaves it: no ping for well over WatchdogSec (400 ms).
  daemon.kill('SIGSTOP');
  const stoppedAt = Date.now();
  await sleep(1200);
  const whileStopped = rx.got.filter((g) => g.msg === 'WATCHDOG=1' && g.at > stoppedAt + 50).length;
  assert.equal(whileStopped, 0, 'a stopped daemon sends no watchdog pings (systemd kills it after WatchdogSec)');
  daemon.kill('SIGCONT');
  const contAt = Date.now();
  await until(() => rx.got.some((g) => g.msg === 'WATCHDOG=1' && g.at > contAt), 3000, 'no ping after SIGCONT');

  daemon.kill('SIGTERM');
  await until(() => rx.got.some((g) => g.msg === 'STOPPING=1'), 10_000, 'no STOPPING=1');
  await new Promise((r) => (daemon.exitCode !== null ? r(null) : daemon.once('exit', r)));
});
