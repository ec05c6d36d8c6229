// Engine selection: the dataplane asks for an Authorizer and never knows which engine it got.
import { Counter } from 'prom-client';
import { FastAuthorizer } from './fast/fast-authorizer.js';
import { Unsupported } from './fast/schema.js';
import { WasmAuthorizer } from './wasm-authorizer.js';
import type { Authorizer, PolicyBundle } from './types.js';

export type EngineName = 'fast' | 'wasm';

/** Policy sets the compiled engine could not take, answered by cedar-wasm instead. */
export const engineFallbacks = new Counter({
  name: 'lilith_engine_fallback_total',
  help: 'Policy set activations where the compiled engine fell back to cedar-wasm',
  labelNames: ['reason'],
});

export interface CreateOptions {
  /** Where the fallback line goes; stderr by default. */
  log?: (line: string) => void;
  /** Builds the compiled engine; tests substitute a failing one to exercise the guard. */
  compile?: (bundle: PolicyBundle) => Authorizer;
}

export function createAuthorizer(bundle: PolicyBundle, engine: EngineName = 'fast', options: CreateOptions = {}): Authorizer {
  switch (engine) {
    case 'wasm':
      return new WasmAuthorizer(bundle);
    case 'fast':
      try {
        return (options.compile ?? ((b) => new FastAuthorizer(b)))(bundle);
      } catch (err) {
        // An invalid bundle fails in cedar-wasm too (and that error is the one to report).
        // The compiler takes all of Cedar 4.x (test/engine/corpus.test.ts), so reaching
        // here means a compiler bug: the reference engine answers, visibly — counted,
        // logged, and marked on the authorizer for `lilith status` and the audit log.
        const wasm = new WasmAuthorizer(bundle);
        const why = err instanceof Unsupported ? err.message : `internal compiler error: ${(err as Error).message}`;
        wasm.fallbackReason = why;
        engineFallbacks.inc({ reason: why.slice(0, 80) });
        (options.log ?? ((l) => process.stderr.write(`${l}\n`)))(
          `lilith engine: compiled engine cannot take this policy set (${why}); using cedar-wasm`,
        );
        return wasm;
      }
  }
}

export { FastAuthorizer } from './fast/fast-authorizer.js';
export { Unsupported } from './fast/schema.js';
export type { Authorizer, AuthzRequest, Decision, PolicyBundle, PreparedBundle, Entity, EntityUid, CedarValue } from './types.js';
export { prepareBundle } from './prepare.js';
export { parseJsonLong, stringifyJsonLong, longOutOfRange, roundLongs, JsonLongError } from './json-long.js';
export { withExactLongs } from './wasm-exact.js';
