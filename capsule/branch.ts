// The capsule branch: where the pipeline publishes signed documents and enforcers read
// them. One layout and one way to tell the documents apart, so the writer (publish) and
// the readers (git source, activation) cannot drift.
import { envelopeTypeOf, RESET_PAYLOAD_TYPE, TIMESTAMP_PAYLOAD_TYPE, TRUST_PAYLOAD_TYPE } from './envelope.js';

/** The signed envelope, byte for byte what `lilith sign` wrote. */
export const CAPSULE_PATH = 'capsule.json';
/** An unsigned human summary of the capsule; never trusted. */
export const SUMMARY_PATH = 'CAPSULE.md';
/** In-band trust rotations: trust/<version>.json. */
export const TRUST_DIR = 'trust';
/** A root-signed watermark-floor reset. */
export const RESET_PATH = 'reset.json';
/** The timestamp role's "capsule D is current" statement. */
export const TIMESTAMP_PATH = 'timestamp.json';

/** The signed documents a capsule branch holds. */
export type DocumentKind = 'capsule' | 'trust' | 'timestamp' | 'reset';

/** File name of the rotation to `version` inside TRUST_DIR. */
export function rotationFileName(version: number): string {
  return `${version}.json`;
}

/** The version a TRUST_DIR entry name stands for, or null if it is not a rotation file. */
export function rotationVersionOf(name: string): number | null {
  const m = /^(\d{1,15})\.json$/.exec(name);
  return m ? Number(m[1]) : null;
}

/**
 * The kind of document an envelope claims to be, by its payload type (unverified: the
 * verifier for that kind decides). Anything that is not a trust rotation, reset or
 * timestamp is a capsule, whose verification refuses what is not one.
 */
export function documentKindOf(bytes: Uint8Array): DocumentKind {
  switch (envelopeTypeOf(bytes)) {
    case TRUST_PAYLOAD_TYPE:
      return 'trust';
    case TIMESTAMP_PAYLOAD_TYPE:
      return 'timestamp';
    case RESET_PAYLOAD_TYPE:
      return 'reset';
    default:
      return 'capsule';
  }
}
