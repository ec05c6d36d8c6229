// Node 20's V8 (11.3) aborts the process ("Fatal error ... unreachable code" in
// Deoptimizer::DoComputeBuiltinContinuation) when optimized code that inlined a
// JS→Wasm call is lazily deoptimized while the call runs. cedar-wasm calls hit it
// once other code (the compiled engine, a test harness) shares the process.
// Reproduced by running both engines interleaved over ~100 random policy sets.
// Turning that inlining off costs cedar-wasm nothing measurable.
import v8 from 'node:v8';

v8.setFlagsFromString('--no-turbo-inline-js-wasm-calls');
