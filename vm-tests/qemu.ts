// Boots one VM under qemu TCG and watches its serial console. Every wait has a deadline:
// no LILITH-BOOTED marker within bootTimeoutMs = "kernel did not boot", no exit within
// totalTimeoutMs = killed. Boot time = spawn → LILITH-BOOTED; scenario time = LILITH-BOOTED → LILITH-DONE.
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';

export interface BootOptions {
  readonly kernel: string;
  readonly initrd: string;
  readonly append: string;
  /** Host directory shared read-write as mount_tag `results`. */
  readonly resultsDir: string;
  readonly consoleLog: string;
  readonly bootTimeoutMs: number;
  readonly totalTimeoutMs: number;
  readonly memoryMb?: number;
  /** Default tcg: KVM does not boot guests on every host (see docs/vm-tests.md). */
  readonly accel?: 'tcg' | 'kvm';
  /** Called with each console line (for live progress). */
  readonly onLine?: (line: string) => void;
}

export interface BootOutcome {
  readonly console: string;
  readonly booted: boolean;
  readonly bootMs: number | null;
  readonly scenarioMs: number | null;
  readonly totalMs: number;
  readonly exitCode: number | null;
  /** Why the VM was killed by the host, if it was. */
  readonly killed?: string;
  /** LILITH-FATAL line from init, if any. */
  readonly fatal?: string;
}

export function qemuArgs(o: BootOptions): string[] {
  return [
    ...(o.accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg', '-cpu', 'max']),
    '-m',
    String(o.memoryMb ?? 2048),
    '-smp',
    '2',
    '-nographic',
    '-no-reboot',
    '-nic',
    'none',
    '-kernel',
    o.kernel,
    '-initrd',
    o.initrd,
    '-append',
    o.append,
    '-virtfs',
    'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap',
    '-virtfs',
    `local,path=${o.resultsDir},mount_tag=results,security_model=none,multidevs=remap`,
  ];
}

export function boot(o: BootOptions): Promise<BootOutcome> {
  return new Promise((resolve) => {
    const started = performance.now();
    const log = createWriteStream(o.consoleLog);
    const child = spawn('qemu-system-x86_64', qemuArgs(o), { stdio: ['ignore', 'pipe', 'pipe'] });
    let consoleText = '';
    let partial = '';
    let bootedAt: number | null = null;
    let doneAt: number | null = null;
    let killed: string | undefined;
    let fatal: string | undefined;
    const kill = (why: string) => {
      if (killed || child.exitCode !== null) return;
      killed = why;
      child.kill('SIGKILL');
    };
    const bootTimer = setTimeout(() => kill(`kernel did not reach the scenario runner within ${o.bootTimeoutMs / 1000}s`), o.bootTimeoutMs);
    const totalTimer = setTimeout(() => kill(`VM still running after ${o.totalTimeoutMs / 1000}s`), o.totalTimeoutMs);
    const onData = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      consoleText += text;
      log.write(chunk);
      partial += text;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const raw of lines) {
        const line = raw.replace(/\r$/, '');
        if (bootedAt === null && line.includes('LILITH-BOOTED')) {
          bootedAt = performance.now();
          clearTimeout(bootTimer);
        }
        if (line.includes('LILITH-DONE')) doneAt = performance.now();
        if (line.includes('LILITH-FATAL')) fatal = line.slice(line.indexOf('LILITH-FATAL') + 13);
        o.onLine?.(line);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    let settled = false;
    child.on('error', (err) => {
      consoleText += `\n[host] failed to start qemu: ${err.message}\n`;
      // A spawn failure may not be followed by 'close'.
      setTimeout(() => finish(null), 100);
    });
    const finish = (code: number | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(bootTimer);
      clearTimeout(totalTimer);
      log.end();
      const end = doneAt ?? performance.now();
      resolve({
        console: consoleText,
        booted: bootedAt !== null,
        bootMs: bootedAt !== null ? Math.round(bootedAt - started) : null,
        scenarioMs: bootedAt !== null ? Math.round(end - bootedAt) : null,
        totalMs: Math.round(performance.now() - started),
        exitCode: code,
        ...(killed ? { killed } : {}),
        ...(fatal ? { fatal } : {}),
      });
    };
    child.on('close', (code) => finish(code));
  });
}
