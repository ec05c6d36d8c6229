// Dataplane metrics in prom-client's default registry (the admin server serves
// /metrics from it). Registered once per process; several dataplanes in one
// process (tests) share the series and the gauges sum their sources.
import client from 'prom-client';

export interface MetricSources {
  activeConnections(): number;
  taintSessions(): number;
  watermark(): number | null;
  auditDropped(): number;
}

const sources = new Set<MetricSources>();

function sum(f: (s: MetricSources) => number): number {
  let n = 0;
  for (const s of sources) n += f(s);
  return n;
}

function create() {
  // Batched decisions belong to the series being replaced.
  pendingProtocol.length = pendingDecision.length = pendingSeconds.length = 0;
  const existing = client.register.getSingleMetric('lilith_decisions_total');
  if (existing) client.register.removeSingleMetric('lilith_decisions_total');
  for (const name of ['lilith_decision_latency_seconds', 'lilith_active_connections', 'lilith_taint_sessions', 'lilith_capsule_watermark', 'lilith_audit_dropped_events', 'lilith_connections_total'])
    if (client.register.getSingleMetric(name)) client.register.removeSingleMetric(name);
  return {
    decisions: new client.Counter({
      name: 'lilith_decisions_total',
      help: 'Policy decisions by protocol and result',
      labelNames: ['protocol', 'decision'] as const,
      collect: flushDecisionMetrics,
    }),
    latency: new client.Histogram({
      name: 'lilith_decision_latency_seconds',
      help: 'Time to build and evaluate one decision',
      labelNames: ['protocol'] as const,
      buckets: [10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 50e-3],
      collect: flushDecisionMetrics,
    }),
    connections: new client.Counter({ name: 'lilith_connections_total', help: 'Connections accepted by the proxy, by detected protocol', labelNames: ['protocol'] as const }),
    active: new client.Gauge({ name: 'lilith_active_connections', help: 'Client connections open in the proxy', collect() { this.set(sum((s) => s.activeConnections())); } }),
    taint: new client.Gauge({ name: 'lilith_taint_sessions', help: 'Taint sessions held (agents plus MCP sessions)', collect() { this.set(sum((s) => s.taintSessions())); } }),
    watermark: new client.Gauge({
      name: 'lilith_capsule_watermark',
      help: 'Watermark of the active capsule (-1 when none)',
      collect() {
        let w = -1;
        for (const s of sources) w = Math.max(w, s.watermark() ?? -1);
        this.set(w);
      },
    }),
    auditDropped: new client.Gauge({ name: 'lilith_audit_dropped_events', help: 'Audit events dropped because the writer queue was full or the disk failed', collect() { this.set(sum((s) => s.auditDropped())); } }),
  };
}

let metrics: ReturnType<typeof create> | null = null;

export function dataplaneMetrics(): ReturnType<typeof create> {
  metrics ??= create();
  return metrics;
}

/** Adds a dataplane's live values to the gauges; returns the function that removes them. */
export function registerMetricSources(s: MetricSources): () => void {
  dataplaneMetrics();
  sources.add(s);
  return () => sources.delete(s);
}

type DecisionResultLabel = 'allow' | 'deny';

// Decisions are counted into plain arrays and handed to prom-client in batches
// (at most a second late, and always before a scrape): prom-client hashes the
// label set on every call, a few microseconds the request would otherwise wait.
const pendingProtocol: string[] = [];
const pendingDecision: DecisionResultLabel[] = [];
const pendingSeconds: number[] = [];
let flushTimer: NodeJS.Timeout | null = null;
const FLUSH_AT = 4096;

/** Hands batched decisions to prom-client (called on a timer, when the batch is full, and before each scrape). */
export function flushDecisionMetrics(): void {
  if (flushTimer) clearTimeout(flushTimer);
  flushTimer = null;
  if (pendingSeconds.length === 0) return;
  const m = dataplaneMetrics();
  const n = pendingSeconds.length;
  for (let i = 0; i < n; i++) {
    m.decisions.inc({ protocol: pendingProtocol[i], decision: pendingDecision[i] });
    m.latency.observe({ protocol: pendingProtocol[i] }, pendingSeconds[i]);
  }
  pendingProtocol.length = pendingDecision.length = pendingSeconds.length = 0;
}

/** Counts one decision and its latency. */
export function recordDecision(protocol: string, decision: DecisionResultLabel, latencySeconds: number): void {
  pendingProtocol.push(protocol);
  pendingDecision.push(decision);
  pendingSeconds.push(latencySeconds);
  if (pendingSeconds.length >= FLUSH_AT) flushDecisionMetrics();
  else if (flushTimer === null) flushTimer = setTimeout(flushDecisionMetrics, 1000).unref();
}
