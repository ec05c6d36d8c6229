// Engine selection: the dataplane asks for an Authorizer and never knows which engine it got.
import { WasmAuthorizer } from './wasm.js';
import type { Authorizer, PolicyBundle } from './types.js';

export type EngineName = 'fast' | 'wasm';

export function createAuthorizer(bundle: PolicyBundle, engine: EngineName = 'wasm'): Authorizer {
  switch (engine) {
    case 'wasm':
      return new WasmAuthorizer(bundle);
    case 'fast':
      // Filled by the compiled engine (issue 8); until then the reference engine answers.
      return new WasmAuthorizer(bundle);
  }
}

export type { Authorizer, AuthzRequest, Decision, PolicyBundle, Entity, EntityUid, CedarValue } from './types.js';
