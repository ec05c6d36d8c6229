// `lilith audit`: prints the enforcer's audit stream (JSON lines) readably,
// optionally filtered and followed across rotations.
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseCommandArgs, runCommand, UsageError } from '../args.js';
import type { AuditEvent } from '../../enforcer/audit/event.js';

export const summary = 'print the audit log readably (--follow, --filter key=value)';

export const usage = `usage: lilith audit [--file PATH] [--follow] [--filter KEY=VALUE]... [--json]

  --file PATH        audit file (default $LILITH_AUDIT, else $LILITH_STATE_DIR/audit.jsonl)
  --follow, -f       keep printing new events as they are written (follows rotation)
  --filter KEY=VALUE only events whose field KEY equals VALUE; repeatable (all must match).
                     KEY is a top-level field: kind, decision, protocol, spiffe_id, action,
                     resource, pid, watermark, reason … ; VALUE may end in * for a prefix match
  --json             print matching events as JSON lines instead of text

Exit: 0 ok; 2 usage or the file cannot be read.`;

type Filter = { key: string; value: string };

export function parseFilter(text: string): Filter {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new UsageError(`--filter expects KEY=VALUE, got '${text}'\n\n${usage}`);
  return { key: text.slice(0, eq), value: text.slice(eq + 1) };
}

export function matches(event: Record<string, unknown>, filters: Filter[]): boolean {
  return filters.every(({ key, value }) => {
    const v = event[key];
    const text = v === null || v === undefined ? 'null' : Array.isArray(v) ? v.join(',') : String(v);
    return value.endsWith('*') ? text.startsWith(value.slice(0, -1)) : text === value;
  });
}

/** One event as a line of text. */
export function formatEvent(e: AuditEvent): string {
  switch (e.kind) {
    case 'decision': {
      const verdict = e.decision === 'allow' ? 'ALLOW' : 'DENY ';
      const why = e.policies.length ? `[${e.policies.join(', ')}]` : e.reason ? `(${e.reason})` : '(default deny)';
      const taint =
        e.taint_before === e.taint_after ? `taint ${short(e.taint_after)}` : `taint ${short(e.taint_before)}→${short(e.taint_after)}`;
      const extra = [e.findings?.length ? `findings ${e.findings.join(',')}` : '', e.errors.length ? `errors ${e.errors.join('; ')}` : '']
        .filter(Boolean)
        .join('  ');
      return `${e.time}  ${verdict} ${e.protocol.padEnd(4)} ${e.spiffe_id ?? '<unknown>'} (pid ${e.pid ?? '?'})  ${e.action} → ${e.resource}  dst ${e.destination ?? '-'}  ${why}  ${taint}  w${e.watermark ?? '-'}  ${e.latency_us}µs${extra ? '  ' + extra : ''}`;
    }
    case 'capsule':
      return `${e.time}  CAPSULE ${e.result} watermark ${e.watermark ?? '-'} from ${e.source}${e.reason ? `: ${e.reason}` : ''}${e.swap_pause_us !== undefined ? ` (swap ${e.swap_pause_us}µs)` : ''}`;
    case 'kernel':
      return `${e.time}  KERNEL  ${e.event}${e.hook ? ` ${e.hook}` : ''}${e.pid !== undefined ? ` pid ${e.pid}` : ''}${e.spiffe_id ? ` ${e.spiffe_id}` : ''}${e.reason ? `: ${e.reason}` : ''}`;
    default:
      return JSON.stringify(e);
  }
}

function short(mask: string): string {
  return '0x' + (mask.replace(/^0x0*/, '') || '0');
}

function defaultFile(): string | null {
  if (process.env.LILITH_AUDIT) return process.env.LILITH_AUDIT;
  if (process.env.LILITH_STATE_DIR) return join(process.env.LILITH_STATE_DIR, 'audit.jsonl');
  return null;
}

export async function run(argv: string[]): Promise<number> {
  return runCommand(async () => {
    const { values } = parseCommandArgs(
      argv,
      {
        file: { type: 'string' },
        follow: { type: 'boolean', short: 'f' },
        filter: { type: 'string', multiple: true },
        json: { type: 'boolean' },
      },
      usage,
    );
    const file = values.file ?? defaultFile();
    if (!file) throw new UsageError(`no audit file: pass --file PATH (or set LILITH_AUDIT / LILITH_STATE_DIR)\n\n${usage}`);
    const filters = (values.filter ?? []).map(parseFilter);
    const out = (line: string) => {
      let event: AuditEvent;
      try {
        event = JSON.parse(line) as AuditEvent;
      } catch {
        process.stderr.write(`lilith audit: skipping a line that is not JSON: ${line.slice(0, 80)}\n`);
        return;
      }
      if (!matches(event as unknown as Record<string, unknown>, filters)) return;
      process.stdout.write((values.json ? JSON.stringify(event) : formatEvent(event)) + '\n');
    };
    await printFrom(file, out, values.follow ?? false);
    return 0;
  });
}

/** Prints every complete line of `file`; with follow, keeps polling (a new inode or a shorter file is a rotation: start over on the new file). */
async function printFrom(file: string, out: (line: string) => void, follow: boolean): Promise<void> {
  let pos = 0;
  let ino: number | null = null;
  let rest = '';
  for (;;) {
    let st;
    try {
      st = await stat(file);
    } catch (err) {
      if (!follow) throw new Error(`cannot read ${file}: ${(err as Error).message}`);
      await sleep(250);
      continue;
    }
    if (ino !== null && (st.ino !== ino || st.size < pos)) {
      pos = 0;
      rest = '';
    }
    ino = st.ino;
    if (st.size > pos) {
      const fh = await open(file, 'r');
      try {
        const buf = Buffer.alloc(Math.min(st.size - pos, 4 * 1024 * 1024));
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
        pos += bytesRead;
        const text = rest + buf.subarray(0, bytesRead).toString('utf8');
        const lines = text.split('\n');
        rest = lines.pop() ?? '';
        for (const l of lines) if (l.trim()) out(l);
      } finally {
        await fh.close();
      }
      if (st.size > pos) continue;
    }
    if (!follow) {
      if (rest.trim()) out(rest);
      return;
    }
    await sleep(250);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
