// The audit event schema (JSON lines). Stable: add fields, never rename or remove.
// Documented in docs/audit.md.

export interface DecisionAuditEvent {
  kind: 'decision';
  time: string; // ISO 8601
  spiffe_id: string | null;
  pid: number | null;
  destination: string | null; // original destination "ip:port"
  protocol: 'mcp' | 'http' | 'tls' | 'tcp' | 'dns';
  action: string;
  resource: string; // `Type::"id"`
  decision: 'allow' | 'deny';
  policies: string[]; // determining policy ids
  errors: string[];
  reason?: string; // why, when not a policy (unknown identity, malformed input, limit)
  taint_before: string; // "0x…" 64-bit mask
  taint_after: string;
  watermark: number | null;
  latency_us: number;
  findings?: string[]; // e.g. "host_mismatch"
  mcp_session?: string; // Mcp-Session-Id, for MCP decisions inside a session
}

export interface CapsuleAuditEvent {
  kind: 'capsule';
  time: string;
  result: 'activated' | 'refused' | 'expired' | 'stale' | 'fresh' | 'trust_rotated' | 'state_reset';
  source: string; // "git:<url>" or "dir:<path>" or "disk"
  watermark: number | null;
  digest: string | null;
  reason?: string;
  swap_pause_us?: number;
}

export interface KernelAuditEvent {
  kind: 'kernel';
  time: string;
  event: 'deny' | 'exec' | 'mode';
  hook?: string;
  pid?: number;
  spiffe_id?: string | null;
  reason?: string;
  detail?: Record<string, unknown>;
}

export type AuditEvent = DecisionAuditEvent | CapsuleAuditEvent | KernelAuditEvent;

/** Where audit events go. emit() never blocks: a full queue drops and counts. */
export interface AuditSink {
  emit(event: AuditEvent): void;
  dropped(): number;
  close(): Promise<void>;
}
