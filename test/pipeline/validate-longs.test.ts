// `lilith validate` reads entities.json with Longs exact, as the capsule and the
// enforcer do: 2^63 − 1 is valid (JSON.parse would read 2^63, out of Cedar's range),
// and an integer outside the 64-bit range is refused at its own line, by path.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { validatePolicySource } from '../../pipeline/validate.js';
import { POLICIES_DIR } from './policy-copy.js';

const SCHEMA = `
entity User;
entity Doc { limit: Long, low: Long };
action "read" appliesTo { principal: [User], resource: [Doc] };
`;
const config = () => {
  const c = JSON.parse(readFileSync(join(POLICIES_DIR, 'lilith.json'), 'utf8')) as { registrations: unknown[] };
  c.registrations = [];
  return JSON.stringify(c);
};
const entitiesErrors = (entitiesText: string) =>
  validatePolicySource({
    policies: {
      'p.cedar': '@id("p")\npermit (principal, action == Action::"read", resource) when { resource.limit > 9007199254740993 };\n',
    },
    invariants: {},
    schema: SCHEMA,
    entitiesText,
    configText: config(),
  }).diagnostics.filter((d) => d.file === 'entities.json' && d.severity === 'error');

test('entities.json Longs at the 64-bit limits validate; one beyond is refused naming its path and line', () => {
  const doc = (limit: string, low: string) =>
    `[\n  {\n    "uid": { "type": "Doc", "id": "d" },\n    "attrs": {\n      "limit": ${limit},\n      "low": ${low}\n    },\n    "parents": []\n  }\n]\n`;
  assert.deepEqual(entitiesErrors(doc('9223372036854775807', '-9223372036854775808')), []);
  assert.deepEqual(entitiesErrors(doc('9007199254740993', '-9007199254740993')), []);

  const over = entitiesErrors(doc('9223372036854775807', '-9223372036854775809'));
  assert.equal(over.length, 1, JSON.stringify(over));
  assert.match(over[0].message, /\[0\]\.attrs\.low is an integer outside the 64-bit Long range/);
  assert.equal(over[0].line, 6, 'the line of "low"');
});
