// The Grafana dashboard queries only metrics the enforcer exports: the metric
// families are read from prom-client's registry after the enforcer's rooms have
// registered theirs (what /metrics serves; test/demo/demo.test.ts checks a real
// scrape of a running enforcer too), and the dashboard covers what operators need.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import client from 'prom-client';
import '../../cedar/index.js';
import { controlMetrics } from '../../enforcer/control/index.js';
import { dataplaneMetrics } from '../../enforcer/dataplane/metrics.js';
import { exposedFamilies, expressions, queriedFamilies, readDashboard } from './dashboard-metrics.js';

test('every metric the Grafana dashboard queries is registered by the enforcer', async () => {
  dataplaneMetrics();
  assert.ok(controlMetrics.activations);
  const exposed = exposedFamilies(await client.register.metrics());
  const queried = queriedFamilies(readDashboard());
  assert.ok(queried.length >= 12, `the dashboard queries ${queried.length} metrics`);
  assert.deepEqual(
    queried.filter((n) => !exposed.has(n)),
    [],
    'queried by deploy/grafana/lilith.json but not exported',
  );
});

test('the dashboard shows decisions by agent, verdict and policy, taint, refusals, sync age, heartbeat and proxy latency', () => {
  const d = readDashboard();
  const all = expressions(d).join('\n');
  for (const [what, pattern] of [
    ['decisions by agent and verdict', /by \(agent, decision\) \(rate\(lilith_policy_decisions_total/],
    ['decisions by policy', /by \(policy, decision\) \(rate\(lilith_policy_decisions_total/],
    ['taint events', /lilith_taint_events_total/],
    ['kernel refusals', /lilith_kernel_denials_total/],
    ['capsule refusals', /lilith_capsule_refusals_total/],
    ['sync age', /time\(\) - lilith_sync_last_success_timestamp_seconds/],
    ['heartbeat', /lilith_kernel_heartbeat_age_seconds/],
    ['proxy latency', /histogram_quantile\(0\.99, .*lilith_decision_latency_seconds_bucket/],
  ] as const)
    assert.match(all, pattern, what);
  const ids = d.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  for (const p of d.panels.filter((x) => x.type !== 'row')) {
    assert.ok(p.targets?.length, `${p.title} has queries`);
    assert.ok(p.datasource, `${p.title} names its data source`);
  }
});
