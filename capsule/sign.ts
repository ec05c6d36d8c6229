// Producing a capsule: payload → exact bytes → envelope signed by every given key.
import { CAPSULE_PAYLOAD_TYPE, signEnvelope } from './envelope.js';
import type { SigningKey } from './keys.js';
import { encodePayload, parsePayload, type CapsulePayload } from './payload.js';

/** Returns the envelope bytes. The payload is shape-checked first so nobody signs a capsule enforcers would refuse as malformed. */
export function signCapsule(payload: CapsulePayload, keys: SigningKey[]): Uint8Array {
  const bytes = encodePayload(payload);
  parsePayload(bytes);
  return signEnvelope(CAPSULE_PAYLOAD_TYPE, bytes, keys);
}
