// The unit of atomic policy activation. The control plane builds a snapshot
// completely (verified capsule, compiled engine) and swaps one reference; the
// dataplane reads the reference once per decision and uses only that snapshot.
import type { LilithConfig } from '../../capsule/config.js';
import type { Authorizer, Entity } from '../../cedar/types.js';

export interface PolicySnapshot {
  readonly watermark: number;
  /** sha256 hex of the capsule's signed payload. */
  readonly digest: string;
  readonly sourceCommit: string | null;
  readonly expiresAt: Date;
  readonly config: LilithConfig;
  readonly entities: Entity[];
  readonly authorizer: Authorizer;
  /** The capsule's Cedar schema text: the dataplane reads which actions are MCP tools and which tool arguments are declared. */
  readonly schema?: string;
}

/** Holds the active snapshot. get() is what the dataplane calls per decision. */
export interface SnapshotSource {
  get(): PolicySnapshot | null;
}
