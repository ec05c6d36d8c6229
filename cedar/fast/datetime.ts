// Cedar's `datetime` extension (cedar-policy-core 4.x, extensions/datetime.rs):
// datetime("…") and duration("…"), offset, durationSince, toDate, toTime,
// toMilliseconds/Seconds/Minutes/Hours/Days, and ordering with < <= > >=.
// Both types are a signed 64-bit count of milliseconds (a datetime counts from
// the Unix epoch), held in the engine's canonical Long form (number while safe,
// else BigInt); every overflow of the 64-bit range is an error.
import { ExtValue } from './ext-value.js';

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const SAFE = 9007199254740991n;
export const DAY_MS = 86_400_000;

export type Ms = number | bigint;

/** Canonical Long form of an exact integer, or null outside the 64-bit range. */
export function msOf(v: bigint): Ms | null {
  if (v < I64_MIN || v > I64_MAX) return null;
  return v >= -SAFE && v <= SAFE ? Number(v) : v;
}

export class DateTime extends ExtValue {
  readonly typeName = 'datetime';
  constructor(readonly ms: Ms) {
    super();
  }
  equals(o: ExtValue): boolean {
    return o instanceof DateTime && this.ms === o.ms;
  }
}

export class Duration extends ExtValue {
  readonly typeName = 'duration';
  constructor(readonly ms: Ms) {
    super();
  }
  equals(o: ExtValue): boolean {
    return o instanceof Duration && this.ms === o.ms;
  }
}

const DURATION = /^-?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$/;
const U64_MAX = 2n ** 64n - 1n;

/** duration("…"): quantity-unit pairs d h m s ms in that order, each optional, an optional leading `-`. */
export function parseDuration(s: string): Duration | string {
  if (s === '' || s === '-') return 'invalid duration pattern';
  const m = DURATION.exec(s);
  if (m === null) return 'invalid duration pattern';
  const neg = s.startsWith('-');
  let total = 0n;
  const units: [number, bigint][] = [
    [10, 1n],
    [8, 1000n],
    [6, 60_000n],
    [4, 3_600_000n],
    [2, 86_400_000n],
  ];
  for (const [group, unit] of units) {
    const digits = m[group];
    if (digits === undefined) continue;
    const n = BigInt(digits);
    // Each quantity is a u64, then an i64; quantity × unit and the running sum stay in the i64 range.
    if (n > U64_MAX) return 'Duration overflows internal representation';
    if (unit === 1n) {
      if (neg ? n > -I64_MIN : n > I64_MAX) return 'Duration overflows internal representation';
    } else if (n > I64_MAX || n * unit > I64_MAX) return 'Duration overflows internal representation';
    total += neg ? -(n * unit) : n * unit;
    if (total < I64_MIN || total > I64_MAX) return 'Duration overflows internal representation';
  }
  return new Duration(msOf(total)!);
}

function isLeap(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (y ≥ 0). */
function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

const DATE = /^([0-9]{4})-([0-9]{2})-([0-9]{2})/;
const HMS = /^T([0-9]{2}):([0-9]{2}):([0-9]{2})/;
const MS_OFFSET = /^(\.([0-9]{3}))?(Z|((\+|-)([0-9]{2})([0-9]{2})))$/;

/**
 * datetime("…"): YYYY-MM-DD, optionally followed by Thh:mm:ss, optional .SSS and
 * then Z or ±hhmm (offset hours below 24, minutes below 60). No leap seconds.
 */
export function parseDateTime(s: string): DateTime | string {
  const d = DATE.exec(s);
  if (d === null) return 'invalid date pattern';
  const [y, mo, da] = [Number(d[1]), Number(d[2]), Number(d[3])];
  const dateOk = mo >= 1 && mo <= 12 && da >= 1 && da <= (mo === 2 && isLeap(y) ? 29 : MONTH_DAYS[mo - 1]);
  const days = dateOk ? daysFromCivil(y, mo, da) : 0;
  if (d[0].length === s.length) return dateOk ? new DateTime(days * DAY_MS) : `invalid date: ${d[0]}`;
  const rest = s.slice(d[0].length);
  const t = HMS.exec(rest);
  if (t === null) return 'invalid hour/minute/second pattern';
  const mz = MS_OFFSET.exec(rest.slice(t[0].length));
  if (mz === null) return 'invalid millisecond and/or offset pattern';
  if (!dateOk) return `invalid date: ${d[0]}`;
  const [h, mi, se] = [Number(t[1]), Number(t[2]), Number(t[3])];
  if (h > 23 || mi > 59 || se > 59) return `invalid hour/minute/second: ${t[0].slice(1)}`;
  const ms = mz[2] === undefined ? 0 : Number(mz[2]);
  let offsetS = 0;
  if (mz[4] !== undefined) {
    const [oh, om] = [Number(mz[6]), Number(mz[7])];
    if (oh >= 24 || om >= 60) return `invalid offset range: ${oh}${om}`;
    offsetS = (mz[5] === '+' ? 1 : -1) * (oh * 3600 + om * 60);
  }
  // Years 0000–9999: always a safe integer of milliseconds.
  return new DateTime(days * DAY_MS + ((h * 60 + mi) * 60 + se - offsetS) * 1000 + ms);
}

/** Exact a + b or a − b in the 64-bit range, or null. */
export function addMs(a: Ms, b: Ms, negate: boolean): Ms | null {
  if (typeof a === 'number' && typeof b === 'number') {
    const r = negate ? a - b : a + b;
    if (Number.isSafeInteger(r)) return r;
  }
  return msOf(negate ? BigInt(a) - BigInt(b) : BigInt(a) + BigInt(b));
}

/** The non-negative remainder of `a` modulo one day. */
export function dayRem(a: Ms): number {
  if (typeof a === 'number') return ((a % DAY_MS) + DAY_MS) % DAY_MS;
  const r = a % BigInt(DAY_MS);
  return Number(r < 0n ? r + BigInt(DAY_MS) : r);
}

/** `a / unit` truncated toward zero, as Rust's integer division. */
export function truncDiv(a: Ms, unit: number): Ms {
  if (typeof a === 'number') return (a - (a % unit)) / unit + 0;
  return msOf(a / BigInt(unit))!;
}
