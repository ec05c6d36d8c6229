// The daemon's audit log: JSON lines appended to a file (or stdout). emit() never
// blocks: lines queue in memory and a bounded queue drops (and counts) when the disk
// cannot keep up.
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import type { AuditEvent, AuditSink } from './audit/event.js';

const MAX_QUEUED_BYTES = 8 * 1024 * 1024;

export function openJsonlAudit(path: string): AuditSink {
  let out: WriteStream | NodeJS.WriteStream;
  if (path === '-') out = process.stdout;
  else {
    mkdirSync(dirname(path), { recursive: true });
    out = createWriteStream(path, { flags: 'a', mode: 0o640 });
  }
  let dropped = 0;
  return {
    emit(event: AuditEvent) {
      if (out.writableLength > MAX_QUEUED_BYTES) {
        dropped++;
        return;
      }
      out.write(JSON.stringify(event) + '\n');
    },
    dropped: () => dropped,
    close: () =>
      new Promise<void>((resolve) => {
        if (out === process.stdout) return resolve();
        (out as WriteStream).end(() => resolve());
      }),
  };
}
