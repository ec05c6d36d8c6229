// Every reason a capsule, trust file or state file is refused has its own code, so
// callers (CLI exit messages, enforcer status, audit) can tell refusals apart
// without parsing messages.

export type CapsuleErrorCode =
  /** Not an envelope / payload of the expected shape, bad base64, bad JSON. */
  | 'malformed'
  /** Larger than the size cap; refused before parsing. */
  | 'too_large'
  /** A signature by a listed key does not verify (tampered payload or signature). */
  | 'bad_signature'
  /** Signed only by keys the trust file does not list. */
  | 'unknown_key'
  /** Fewer distinct valid listed keys than the threshold. */
  | 'below_threshold'
  /** Watermark lower than the last accepted one. */
  | 'rollback'
  /** Same watermark as the last accepted capsule but a different payload digest. */
  | 'watermark_reuse'
  /** expires_at is not after `now` (or the trust file itself has expired). */
  | 'expired'
  /** created_at lies further in the future than the allowed clock skew. */
  | 'not_yet_valid'
  /** The stored anti-rollback state cannot be read or parsed; never silently reset. */
  | 'state_corrupt'
  /** A trust file (plain or rotation envelope) is unusable. */
  | 'bad_trust'
  /** Signed, but a policy or invariant fails strict validation against the capsule's schema (or the schema does not parse). */
  | 'invalid_policies'
  /** Signed, but the static entities do not conform to the capsule's schema. */
  | 'invalid_entities'
  /**
   * Signed, but lilith.json does not fit the rest of the capsule: a policy tests a taint
   * label it does not define (that test can never match), or it names a zone or agent
   * group entities.json does not define.
   */
  | 'invalid_config'
  /** expires_at − created_at is longer than the trust file's max_validity_s. */
  | 'validity_too_long'
  /** Created before a root-signed watermark reset (the capsule the reset undid, or older). */
  | 'before_reset'
  /** A reset or timestamp does not apply (names another state, capsule or trust version). */
  | 'mismatch';

export class CapsuleError extends Error {
  override readonly name = 'CapsuleError';
  constructor(
    readonly code: CapsuleErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isCapsuleError(err: unknown, code?: CapsuleErrorCode): err is CapsuleError {
  return err instanceof CapsuleError && (code === undefined || err.code === code);
}
