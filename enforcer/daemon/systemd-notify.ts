// systemd integration (Type=notify, WatchdogSec): READY=1 once the daemon
// enforces, WATCHDOG=1 from the event loop, STOPPING=1 on shutdown. The
// watchdog is what restarts a daemon that is alive but not working: stopped
// (SIGSTOP, a ptrace attach/detach race on kernels without BPF-LSM) or with a
// blocked event loop. Neither exits, so Restart=on-failure alone never fires,
// and meanwhile the kernel fails every managed process closed. Pings come from
// a timer, not from the kernel heartbeat: an expired capsule under fail_closed
// stops the heartbeat on purpose, and must not get the daemon restarted.

export type NotifySend = (socket: string, message: string) => void;

export interface SystemdNotifier {
  /** Interval of the WATCHDOG=1 pings (a quarter of WATCHDOG_USEC), or null when systemd runs no watchdog. */
  readonly watchdogIntervalMs: number | null;
  /** READY=1 with a status line, and starts the watchdog pings. */
  ready(status: string): void;
  /** STOPPING=1 and no more pings. */
  stopping(): void;
}

/** Pings per WatchdogSec: systemd's advice is at least two; four leave room for a slow tick. */
const PINGS_PER_PERIOD = 4;
const MIN_INTERVAL_MS = 10;

/** The ping interval the environment asks for, or null (no watchdog, or one meant for another process). */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv, pid = process.pid): number | null {
  const usec = env.WATCHDOG_USEC;
  if (!usec || !/^\d+$/.test(usec) || Number(usec) === 0) return null;
  if (env.WATCHDOG_PID && env.WATCHDOG_PID !== String(pid)) return null;
  return Math.max(MIN_INTERVAL_MS, Math.floor(Number(usec) / 1000 / PINGS_PER_PERIOD));
}

/** null without NOTIFY_SOCKET (not run by systemd with Type=notify). `send` defaults to the addon's sendto. */
export async function systemdNotifier(
  env: NodeJS.ProcessEnv,
  log: (line: string) => void,
  send?: NotifySend,
): Promise<SystemdNotifier | null> {
  const socket = env.NOTIFY_SOCKET;
  if (!socket) return null;
  let sendTo = send;
  if (!sendTo) {
    try {
      sendTo = (await import('../../bpf/sd-notify.js')).sdNotify;
    } catch (err) {
      // Loud: systemd will time the start out and restart us, and the journal says why.
      log(`NOTIFY_SOCKET is set but sd_notify is unavailable (${(err as Error).message}): systemd will not see this daemon ready`);
      return null;
    }
  }
  const interval = watchdogIntervalMs(env);
  let timer: NodeJS.Timeout | null = null;
  let failing = false;
  const notify = (message: string): void => {
    try {
      sendTo(socket, message);
      if (failing) log('sd_notify works again');
      failing = false;
    } catch (err) {
      // Logged once per failure streak: a missed ping is made up by the next one, or systemd restarts us.
      if (!failing) log(`sd_notify to ${socket} failed: ${(err as Error).message}`);
      failing = true;
    }
  };
  return {
    watchdogIntervalMs: interval,
    ready(status) {
      notify(`READY=1\nSTATUS=${status.replace(/\n/g, ' ')}\nMAINPID=${process.pid}`);
      if (interval === null || timer) return;
      timer = setInterval(() => notify('WATCHDOG=1'), interval);
      timer.unref();
    },
    stopping() {
      if (timer) clearInterval(timer);
      timer = null;
      notify('STOPPING=1');
    },
  };
}
