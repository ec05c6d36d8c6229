// Cedar's `decimal` extension: decimal("…") and lessThan/lessThanOrEqual/
// greaterThan/greaterThanOrEqual. As cedar-policy-core (extensions/decimal.rs): the
// text must match -?DIGITS.DIGITS with at most 4 fractional digits; the value is
// the 64-bit integer d × 10^4 with overflow an error. The sign comes from the
// text, so decimal("-0.5") is negative (as cedar-wasm 4.13 decides).
import { ExtValue } from './ext-value.js';
const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

export class Decimal extends ExtValue {
  readonly typeName = 'decimal';
  constructor(readonly value: bigint) {
    super();
  }
  equals(o: ExtValue): boolean {
    return o instanceof Decimal && this.value === o.value;
  }
}

const inRange = (v: bigint) => v >= I64_MIN && v <= I64_MAX;

export function parseDecimal(s: string): Decimal | string {
  const m = /^(-?[0-9]+)\.([0-9]+)$/.exec(s);
  if (!m) return `\`${s}\` is not a well-formed decimal value`;
  const l = BigInt(m[1]);
  if (!inRange(l) || !inRange(l * 10000n)) return 'overflow when converting to decimal';
  if (m[2].length > 4) return `too many digits after the decimal in \`${s}\``;
  const r = BigInt(m[2]) * 10n ** BigInt(4 - m[2].length);
  const v = m[1].startsWith('-') ? l * 10000n - r : l * 10000n + r;
  return inRange(v) ? new Decimal(v) : 'overflow when converting to decimal';
}
