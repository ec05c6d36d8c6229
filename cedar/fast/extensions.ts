// The extension functions of Cedar 4.x by name: what compiled policies call and
// what `__extn` values in policies, contexts and entities are built with.
import * as rt from './runtime.js';
import type { Value } from './values.js';

/** Extension functions (Cedar 4.x): EST name → runtime function and arity. */
export const EXT_FNS = new Map<string, { name: string; arity: number }>([
  ['ip', { name: 'ipFn', arity: 1 }],
  ['isIpv4', { name: 'isIpv4', arity: 1 }],
  ['isIpv6', { name: 'isIpv6', arity: 1 }],
  ['isLoopback', { name: 'isLoopback', arity: 1 }],
  ['isMulticast', { name: 'isMulticast', arity: 1 }],
  ['isInRange', { name: 'isInRange', arity: 2 }],
  ['decimal', { name: 'decimalFn', arity: 1 }],
  ['lessThan', { name: 'lessThan', arity: 2 }],
  ['lessThanOrEqual', { name: 'lessThanOrEqual', arity: 2 }],
  ['greaterThan', { name: 'greaterThan', arity: 2 }],
  ['greaterThanOrEqual', { name: 'greaterThanOrEqual', arity: 2 }],
  ['datetime', { name: 'datetimeFn', arity: 1 }],
  ['duration', { name: 'durationFn', arity: 1 }],
  ['offset', { name: 'offset', arity: 2 }],
  ['durationSince', { name: 'durationSince', arity: 2 }],
  ['toDate', { name: 'toDate', arity: 1 }],
  ['toTime', { name: 'toTime', arity: 1 }],
  ['toMilliseconds', { name: 'toMilliseconds', arity: 1 }],
  ['toSeconds', { name: 'toSeconds', arity: 1 }],
  ['toMinutes', { name: 'toMinutes', arity: 1 }],
  ['toHours', { name: 'toHours', arity: 1 }],
  ['toDays', { name: 'toDays', arity: 1 }],
]);

const FNS: Record<string, unknown> = { ...rt };

/** Applies extension function `fn` to already-converted arguments (for `__extn` literals and JSON values). */
export function applyExtension(fn: string, args: unknown[]): Value {
  const f = EXT_FNS.get(fn);
  if (f === undefined || args.length !== f.arity) throw new rt.EvalError(`unknown extension function ${fn}/${args.length}`);
  return (FNS[f.name] as (...a: unknown[]) => Value)(...args);
}
