// Node 20's V8 (11.3) aborts the process ("Fatal error ... unreachable code" in
// Deoptimizer::DoComputeBuiltinContinuation) when optimized code that inlined a
// JS→Wasm call is lazily deoptimized while the call runs. cedar-wasm calls hit it
// once other code (the compiled engine, a test harness) shares the process.
// Reproduced by running both engines interleaved over ~100 random policy sets.
// Turning that inlining off costs cedar-wasm nothing measurable.
import v8 from 'node:v8';

v8.setFlagsFromString('--no-turbo-inline-js-wasm-calls');

// Under an emulated CPU (qemu TCG, the VM test matrix) V8's switch from its baseline
// Wasm compiler to the optimizing one crashes the process (SIGSEGV, or a fatal check in
// Runtime_WasmTriggerTierUp) on 6.1 and 6.12 guests alike, while the host is stable.
// The VM init sets LILITH_WASM_LIFTOFF_ONLY=1 to keep cedar-wasm on the baseline compiler.
if (process.env.LILITH_WASM_LIFTOFF_ONLY === '1') v8.setFlagsFromString('--liftoff-only');
