// The daemon's audit log: the dataplane's rotating file sink, or JSON lines on stdout
// ("-", for containers whose runtime collects stdout). emit() never blocks either way.
import type { AuditEvent, AuditSink } from '../audit/event.js';
import { FileAuditSink } from './audit-sink.js';

const MAX_QUEUED_BYTES = 8 * 1024 * 1024;

function stdoutSink(): AuditSink {
  let dropped = 0;
  return {
    emit(event: AuditEvent) {
      if (process.stdout.writableLength > MAX_QUEUED_BYTES) {
        dropped++;
        return;
      }
      process.stdout.write(JSON.stringify(event) + '\n');
    },
    dropped: () => dropped,
    close: async () => undefined,
  };
}

export function openAudit(path: string): AuditSink {
  return path === '-' ? stdoutSink() : new FileAuditSink(path);
}
