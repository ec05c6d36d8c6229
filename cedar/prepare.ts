// The part of building an engine that is cedar-wasm parsing (~90 % of it): policy
// text to JSON, schema text to its resolved JSON form. Pure data in, data out,
// so it can run on another thread (the capsule verification worker does) and
// leave the event loop only the compile.
import * as cedar from './wasm-loader.js';
import { splitPolicies } from './policy-set.js';
import type { PolicyBundle, PreparedBundle } from './types.js';

export function prepareBundle(bundle: Pick<PolicyBundle, 'policies' | 'schema'>): PreparedBundle {
  return { policies: splitPolicies(bundle.policies), schemaJson: cedar.schemaToJsonWithResolvedTypes(bundle.schema) };
}
