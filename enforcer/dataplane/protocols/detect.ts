// Protocol detection from a connection's first bytes.
import { httpPrefix } from './http1.js';
import { looksLikeTls } from './tls.js';

export type Detected = 'tls' | 'http' | 'tcp';

/** 'tls' | 'http' | 'tcp' when the bytes decide it, 'maybe' while a longer prefix could still be HTTP. */
export function detectProtocol(first: Buffer): Detected | 'maybe' {
  if (first.length === 0) return 'maybe';
  if (looksLikeTls(first)) return first.length >= 2 ? 'tls' : 'maybe';
  const http = httpPrefix(first);
  if (http === 'yes') return 'http';
  if (http === 'maybe') return 'maybe';
  return 'tcp';
}
