// The one place cedar-wasm is loaded. Importing it through here guarantees the
// V8 flag that keeps Node 20 from aborting inside JS→Wasm calls is set first
// (see fast/v8-flags.ts), whoever loads Cedar first: enforcer, prover or a test.
import './fast/v8-flags.js';

export * from '@cedar-policy/cedar-wasm/nodejs';
