import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readPolicyDir, toBundle } from '../pipeline/policy-source.js';
import { WasmAuthorizer } from '../cedar/wasm-authorizer.js';

const agent = { type: 'Agent', id: 'spiffe://corp.example/agents/coder' };
const files = { type: 'MCPServer', id: 'files' };
const ctx = (taint: string[], mask: number) => ({ taint, data_touched: mask, tool: 'x', arguments: {} });

test('bundled policies: the seed sequence decides as the seed says', async () => {
  const authz = new WasmAuthorizer(toBundle(await readPolicyDir('policies')));
  const readFile = authz.isAuthorized({
    principal: agent,
    action: { type: 'Action', id: 'read_file' },
    resource: files,
    context: ctx([], 0),
  });
  assert.equal(readFile.decision, 'allow');
  assert.deepEqual(readFile.reasons, ['read-file-clean']);
  const report = authz.isAuthorized({
    principal: agent,
    action: { type: 'Action', id: 'fetch_report' },
    resource: { type: 'MCPServer', id: 'reports' },
    context: ctx(['PII'], 1),
  });
  assert.equal(report.decision, 'allow');
  const post = authz.isAuthorized({
    principal: agent,
    action: { type: 'Action', id: 'http_post' },
    resource: files,
    context: ctx(['PII', 'FINANCIAL'], 3),
  });
  assert.equal(post.decision, 'deny');
  assert.deepEqual(post.reasons, ['taint-blocks-egress']);
  const creds = authz.isAuthorized({
    principal: agent,
    action: { type: 'Action', id: 'read_file' },
    resource: files,
    context: ctx(['CREDENTIALS'], 8),
  });
  assert.equal(creds.decision, 'deny');
  authz.dispose();
});
