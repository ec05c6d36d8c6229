// Calling cedar-wasm with Longs exact. cedar-wasm reads its argument as the text
// JSON.stringify makes of it (its glue calls the global at call time) and parses
// that text with 64-bit integers; JSON.stringify itself throws on a BigInt, and a
// double cannot carry 2^53 + 1. So for the length of one synchronous call,
// stringifying the argument — and nothing else — writes BigInts as exact digits.
import { stringifyJsonLong } from './json-long.js';

/** `f(arg)`, one cedar-wasm call, with the BigInts in `arg` reaching Cedar as exact Longs. */
export function withExactLongs<A extends object, R>(f: (arg: A) => R, arg: A): R {
  const native = JSON.stringify;
  JSON.stringify = function (this: JSON, value: unknown, ...rest: unknown[]) {
    if (value === arg) return stringifyJsonLong(value);
    return (native as (v: unknown, ...r: unknown[]) => string).call(this, value, ...rest);
  } as typeof JSON.stringify;
  try {
    return f(arg);
  } finally {
    JSON.stringify = native;
  }
}
