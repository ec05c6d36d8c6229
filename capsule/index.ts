// The capsule API shared by the pipeline (sign, publish) and the enforcer (verify, activate).
export { CapsuleError, isCapsuleError, type CapsuleErrorCode } from './errors.js';
export {
  CAPSULE_PAYLOAD_TYPE,
  TRUST_PAYLOAD_TYPE,
  TIMESTAMP_PAYLOAD_TYPE,
  RESET_PAYLOAD_TYPE,
  envelopeTypeOf,
  addSignatures,
  pae,
  signEnvelope,
  decodeEnvelope,
  type Envelope,
  type EnvelopeSignature,
} from './envelope.js';
export {
  keyIdOf,
  generateSigningKey,
  signingKeyFromSeed,
  readSigningKey,
  parseSecretKeyFile,
  writeKeyFiles,
  toPublicKeyFile,
  toSecretKeyFile,
  type SigningKey,
  type SecretKeyFile,
  type PublicKeyFile,
} from './keys.js';
export {
  parseTrust,
  parseTrustValue,
  trustFromKeys,
  signTrustUpdate,
  verifyTrustUpdate,
  checkTrustCurrent,
  trustFileV2,
  MAX_TRUST_BYTES,
  TRUST_FORMAT_V2,
  type Trust,
  type TrustFile,
} from './trust.js';
export {
  CAPSULE_FORMAT,
  parsePayload,
  encodePayload,
  bundleOf,
  sha256Hex,
  peekCapsule,
  peekCapsuleClaims,
  type CapsulePayload,
} from './payload.js';
export { readState, writeStateAtomic, statePath, STATE_FILE, type CapsuleState } from './state.js';
export {
  verifyCapsule,
  verifyCapsuleSignatures,
  stateFor,
  MAX_CAPSULE_BYTES,
  DEFAULT_CLOCK_SKEW_MS,
  type VerifiedCapsule,
  type VerifyOptions,
} from './verify.js';
export { signCapsule } from './sign.js';
export { acceptCapsule } from './accept.js';
export {
  signTimestamp,
  verifyTimestamp,
  parseTimestampPayload,
  TIMESTAMP_FORMAT,
  MAX_TIMESTAMP_BYTES,
  type TimestampPayload,
  type VerifiedTimestamp,
} from './timestamp.js';
export { signReset, verifyReset, applyReset, parseResetPayload, RESET_FORMAT, type ResetPayload, type VerifiedReset } from './reset.js';
export {
  CAPSULE_PATH,
  SUMMARY_PATH,
  TRUST_DIR,
  RESET_PATH,
  TIMESTAMP_PATH,
  documentKindOf,
  rotationFileName,
  rotationVersionOf,
  type DocumentKind,
} from './branch.js';
