// Protocol detection from a connection's first bytes. Anything that could be
// read as HTTP by some server is HTTP here (and then parsed strictly, so a
// malformed request is refused, never relayed as something else); only bytes
// no HTTP/1 server would take for a request are opaque TCP. 'maybe' means the
// bytes so far do not decide it: the caller waits, under a deadline that
// refuses the connection when it passes.
import { httpPrefix } from './http1.js';
import { looksLikeTls } from './tls.js';

export type Detected = 'tls' | 'http' | 'h2c' | 'tcp';

/** RFC 9113 §3.4: what a client speaking HTTP/2 with prior knowledge sends first. */
export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** RFC 9110 tchar. */
function isTchar(b: number): boolean {
  if ((b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)) return true;
  return (
    b === 0x21 ||
    (b >= 0x23 && b <= 0x27) ||
    b === 0x2a ||
    b === 0x2b ||
    b === 0x2d ||
    b === 0x2e ||
    b === 0x5e ||
    b === 0x5f ||
    b === 0x60 ||
    b === 0x7c ||
    b === 0x7e
  );
}

const HTTP_VERSION = Buffer.from(' HTTP/');

/**
 * 'tls' | 'http' | 'h2c' | 'tcp' when the bytes decide it, 'maybe' while more could.
 * `maxLine`: a first line longer than this that began like a request line is HTTP (its parser refuses it).
 */
export function detectProtocol(first: Buffer, maxLine = 32 * 1024): Detected | 'maybe' {
  if (first.length === 0) return 'maybe';
  if (first[0] === 0x16) return first.length < 2 ? 'maybe' : looksLikeTls(first) ? 'tls' : 'tcp';
  // The HTTP/2 preface, whole: h2c with prior knowledge (decided as such, never parsed as HTTP/1).
  const n = Math.min(first.length, H2_PREFACE.length);
  if (first.subarray(0, n).equals(H2_PREFACE.subarray(0, n))) return n === H2_PREFACE.length ? 'h2c' : 'maybe';
  // Leading empty lines: some servers skip them before a request line.
  if (first[0] === 0x0d || first[0] === 0x0a) return 'http';
  if (httpPrefix(first) === 'yes') return 'http';
  let i = 0;
  while (i < first.length && isTchar(first[i])) i++;
  if (i === 0) return 'tcp';
  if (i === first.length) return i > maxLine ? 'tcp' : 'maybe';
  if (first[i] !== 0x20) return 'tcp';
  // "TOKEN SP …": a request line when it ends in an HTTP version (any method name: some servers take any token).
  const lf = first.indexOf(0x0a, i);
  if (lf < 0) return first.length > maxLine ? 'http' : 'maybe';
  return first.subarray(0, lf).indexOf(HTTP_VERSION) >= 0 ? 'http' : 'tcp';
}
