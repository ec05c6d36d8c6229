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
  // Counts belong to the series being replaced.
  decisionCounts.clear();
  latencyCells.clear();
  policyCounts.clear();
  last = null;
  taintCounts.clear();
  const existing = client.register.getSingleMetric('lilith_decisions_total');
  if (existing) client.register.removeSingleMetric('lilith_decisions_total');
  for (const name of [
    'lilith_decision_latency_seconds',
    'lilith_active_connections',
    'lilith_taint_sessions',
    'lilith_capsule_watermark',
    'lilith_audit_dropped_events',
    'lilith_connections_total',
    'lilith_policy_decisions_total',
    'lilith_taint_events_total',
  ])
    if (client.register.getSingleMetric(name)) client.register.removeSingleMetric(name);
  return {
    decisions: new client.Counter({
      name: 'lilith_decisions_total',
      help: 'Policy decisions by protocol and result',
      labelNames: ['protocol', 'decision'] as const,
      collect() {
        this.reset();
        for (const c of decisionCounts.values()) this.inc({ protocol: c.protocol, decision: c.decision }, c.n);
      },
    }),
    latency: latencyHistogram(),
    policyDecisions: new client.Counter({
      name: 'lilith_policy_decisions_total',
      help: 'Policy decisions by agent (SPIFFE ID), result and determining policy ("none" when no policy decided)',
      labelNames: ['agent', 'decision', 'policy'] as const,
      collect() {
        this.reset();
        for (const c of policyCounts.values()) this.inc({ agent: c.agent, decision: c.decision, policy: c.policy }, c.n);
      },
    }),
    taintEvents: new client.Counter({
      name: 'lilith_taint_events_total',
      help: "Decisions that grew an agent's taint mask, by agent (SPIFFE ID)",
      labelNames: ['agent'] as const,
      collect() {
        this.reset();
        for (const [agent, n] of taintCounts) this.inc({ agent }, n);
      },
    }),
    connections: new client.Counter({
      name: 'lilith_connections_total',
      help: 'Connections accepted by the proxy, by detected protocol',
      labelNames: ['protocol'] as const,
    }),
    active: new client.Gauge({
      name: 'lilith_active_connections',
      help: 'Client connections open in the proxy',
      collect() {
        this.set(sum((s) => s.activeConnections()));
      },
    }),
    taint: new client.Gauge({
      name: 'lilith_taint_sessions',
      help: 'Taint sessions held (agents plus MCP sessions)',
      collect() {
        this.set(sum((s) => s.taintSessions()));
      },
    }),
    watermark: new client.Gauge({
      name: 'lilith_capsule_watermark',
      help: 'Watermark of the active capsule (-1 when none)',
      collect() {
        let w = -1;
        for (const s of sources) w = Math.max(w, s.watermark() ?? -1);
        this.set(w);
      },
    }),
    auditDropped: new client.Gauge({
      name: 'lilith_audit_dropped_events',
      help: 'Audit events dropped because the writer queue was full or the disk failed',
      collect() {
        this.set(sum((s) => s.auditDropped()));
      },
    }),
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

const LATENCY_BUCKETS = [10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 50e-3];

/** One protocol's decision latencies: cumulative counts are made at scrape time. */
interface LatencyCells {
  buckets: Float64Array;
  sum: number;
  count: number;
}

// Decisions are counted in plain numbers here and read by prom-client at scrape
// time: prom-client hashes the label set on every inc()/observe(), a few
// microseconds each request would otherwise wait.
const decisionCounts = new Map<string, { protocol: string; decision: DecisionResultLabel; n: number }>();
const latencyCells = new Map<string, LatencyCells>();

// Label values are bounded by the capsule: agents come from its registrations
// ("unknown" for the rest), policies from its policy ids.
interface PolicyCount {
  agent: string;
  decision: DecisionResultLabel;
  policy: string;
  n: number;
}
const policyCounts = new Map<string, PolicyCount>();
let last: { policies: readonly string[]; agent: string; decision: DecisionResultLabel; counters: PolicyCount[] } | null = null;
const taintCounts = new Map<string, number>();

/** Counts one decision by agent and determining policy, and a taint event when the mask grew. */
export function recordPolicyDecision(
  agent: string | null,
  decision: DecisionResultLabel,
  policies: readonly string[],
  taintGrew: boolean,
): void {
  const a = agent ?? 'unknown';
  // A remembered decision hands back the same policies array: its counters are the last call's.
  if (last !== null && last.policies === policies && last.agent === a && last.decision === decision) {
    for (const c of last.counters) c.n++;
  } else {
    const counters: PolicyCount[] = [];
    for (const policy of policies.length ? policies : ['none']) {
      const key = a + '\0' + decision + '\0' + policy;
      let c = policyCounts.get(key);
      if (c === undefined) policyCounts.set(key, (c = { agent: a, decision, policy, n: 0 }));
      c.n++;
      counters.push(c);
    }
    last = { policies, agent: a, decision, counters };
  }
  if (taintGrew) taintCounts.set(a, (taintCounts.get(a) ?? 0) + 1);
}

/** Counts one decision and its latency. */
export function recordDecision(protocol: string, decision: DecisionResultLabel, latencySeconds: number): void {
  const key = protocol + '/' + decision;
  const c = decisionCounts.get(key);
  if (c === undefined) decisionCounts.set(key, { protocol, decision, n: 1 });
  else c.n++;
  let cells = latencyCells.get(protocol);
  if (cells === undefined) latencyCells.set(protocol, (cells = { buckets: new Float64Array(LATENCY_BUCKETS.length), sum: 0, count: 0 }));
  let i = 0;
  while (i < LATENCY_BUCKETS.length && latencySeconds > LATENCY_BUCKETS[i]) i++;
  if (i < LATENCY_BUCKETS.length) cells.buckets[i]++;
  cells.sum += latencySeconds;
  cells.count++;
}

/**
 * lilith_decision_latency_seconds, served from latencyCells in prom-client's
 * histogram exposition (bucket/sum/count series) through the registry's
 * metric interface.
 */
function latencyHistogram() {
  const name = 'lilith_decision_latency_seconds';
  const help = 'Time to build and evaluate one decision';
  const metric = {
    name,
    help,
    type: 'histogram' as const,
    aggregator: 'sum' as const,
    collect: () => undefined,
    reset: () => latencyCells.clear(),
    get: async () => {
      const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
      for (const [protocol, cells] of latencyCells) {
        let cumulative = 0;
        for (let i = 0; i < LATENCY_BUCKETS.length; i++) {
          cumulative += cells.buckets[i];
          values.push({ labels: { le: LATENCY_BUCKETS[i], protocol }, value: cumulative, metricName: `${name}_bucket` });
        }
        values.push({ labels: { le: '+Inf', protocol }, value: cells.count, metricName: `${name}_bucket` });
        values.push({ labels: { protocol }, value: cells.sum, metricName: `${name}_sum` });
        values.push({ labels: { protocol }, value: cells.count, metricName: `${name}_count` });
      }
      return { name, help, type: metric.type, values, aggregator: metric.aggregator };
    },
  };
  client.register.registerMetric(metric as unknown as client.Metric);
  return metric;
}
