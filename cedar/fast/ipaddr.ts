// Cedar's `ipaddr` extension: ip("…") and isIpv4/isIpv6/isLoopback/isMulticast/isInRange.
// Parsing follows cedar-policy-core 4.x (extensions/ipaddr.rs) over Rust's
// std::net parser: dotted IPv4 with 1–3 digit octets and no leading zeros; IPv6
// with 1–4 hex digit groups and at most one "::" standing for at least one group;
// no IPv4-in-IPv6 (a string with two or more ':' and two or more '.' is refused);
// an optional "/prefix" of plain digits without leading zeros, at most 32 or 128.
import { ExtValue } from './ext-value.js';
export class IPAddr extends ExtValue {
  readonly typeName = 'ipaddr';
  constructor(
    readonly v6: boolean,
    /** The address as given (host bits are kept, as in Cedar). */
    readonly addr: bigint,
    readonly subnet: number,
  ) {
    super();
  }

  equals(o: ExtValue): boolean {
    return o instanceof IPAddr && this.v6 === o.v6 && this.addr === o.addr && this.subnet === o.subnet;
  }
}

/** Rust's read_number: `max` digits at most, value within `limit`; null on failure. */
function number(s: string, radix: number, max: number, zeroPrefix: boolean, limit: number): number | null {
  if (s.length === 0 || s.length > max) return null;
  let v = 0;
  for (const c of s) {
    const d = parseInt(c, radix);
    if (Number.isNaN(d) || !/^[0-9a-fA-F]$/.test(c)) return null;
    v = v * radix + d;
  }
  if (!zeroPrefix && s.length > 1 && s[0] === '0') return null;
  return v > limit ? null : v;
}

function parseV4(s: string): bigint | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  let v = 0n;
  for (const p of parts) {
    const n = number(p, 10, 3, false, 255);
    if (n === null) return null;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

function groups(s: string): number[] | null {
  if (s === '') return [];
  const out: number[] = [];
  for (const g of s.split(':')) {
    const n = number(g, 16, 4, true, 0xffff);
    if (n === null) return null;
    out.push(n);
  }
  return out;
}

function parseV6(s: string): bigint | null {
  if (s.includes('.')) return null; // embedded IPv4 never survives Cedar's pre-check
  const dbl = s.indexOf('::');
  let all: number[];
  if (dbl < 0) {
    const g = groups(s);
    if (g === null || g.length !== 8) return null;
    all = g;
  } else {
    if (s.indexOf('::', dbl + 1) >= 0) return null;
    const head = groups(s.slice(0, dbl));
    const tail = groups(s.slice(dbl + 2));
    // "::" stands for at least one zero group.
    if (head === null || tail === null || head.length + tail.length > 7) return null;
    all = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  }
  let v = 0n;
  for (const g of all) v = (v << 16n) | BigInt(g);
  return v;
}

function parseAddr(s: string): { v6: boolean; addr: bigint } | null {
  const v4 = parseV4(s);
  if (v4 !== null) return { v6: false, addr: v4 };
  const v6 = parseV6(s);
  return v6 === null ? null : { v6: true, addr: v6 };
}

function atLeastTwo(s: string, c: string): boolean {
  const i = s.indexOf(c);
  return i >= 0 && s.indexOf(c, i + 1) >= 0;
}

/** Cedar's parse_prefix: at most 2 (IPv4) or 3 (IPv6) ASCII digits, no leading zero, within 32/128. */
function parsePrefix(p: string, v6: boolean): number | string {
  if (p.length > (v6 ? 3 : 2)) return `prefix \`${p}\` is too long`;
  if (!/^[0-9]*$/.test(p)) return `prefix \`${p}\`: encountered non-digit`;
  if (p.length === 0) return 'empty prefix';
  if (p.length > 1 && p[0] === '0') return `prefix \`${p}\`: leading zero(s)`;
  const n = Number(p);
  return n > (v6 ? 128 : 32) ? `prefix ${n} is larger than the limit ${v6 ? 128 : 32}` : n;
}

/** The parsed address, or an error message (cedar-policy-core 4.x IPAddr::from_str). */
export function parseIp(s: string): IPAddr | string {
  if (Buffer.byteLength(s, 'utf8') > 43) return `\`${s}\`: string length is too large`;
  if (atLeastTwo(s, ':') && atLeastTwo(s, '.')) return `IPv4 embedded in IPv6 is not accepted: \`${s}\``;
  const slash = s.indexOf('/');
  if (slash < 0) {
    const whole = parseAddr(s);
    return whole ? new IPAddr(whole.v6, whole.addr, whole.v6 ? 128 : 32) : `invalid IP address: ${s}`;
  }
  const a = parseAddr(s.slice(0, slash));
  if (!a) return `invalid IP address \`${s.slice(0, slash)}\``;
  const prefix = parsePrefix(s.slice(slash + 1), a.v6);
  if (typeof prefix === 'string') return prefix;
  return new IPAddr(a.v6, a.addr, prefix);
}

export function isLoopback(ip: IPAddr): boolean {
  return ip.v6 ? ip.addr === 1n && ip.subnet >= 128 : ip.addr >> 24n === 127n && ip.subnet >= 8;
}

export function isMulticast(ip: IPAddr): boolean {
  return ip.v6 ? ip.addr >> 120n === 0xffn && ip.subnet >= 8 : ip.addr >> 28n === 0xen && ip.subnet >= 4;
}

export function isInRange(child: IPAddr, parent: IPAddr): boolean {
  if (child.v6 !== parent.v6) return false;
  const bits = child.v6 ? 128n : 32n;
  const all = (1n << bits) - 1n;
  const host = (subnet: number) => all >> BigInt(subnet);
  const net = (subnet: number) => all ^ host(subnet);
  const cn = child.addr & net(child.subnet);
  const pn = parent.addr & net(parent.subnet);
  const cb = child.addr | host(child.subnet);
  const pb = parent.addr | host(parent.subnet);
  return pn <= cn && cb <= pb;
}
