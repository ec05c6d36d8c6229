// Escalations a human approved on purpose: files `approvals/*.json` in the
// head policy tree, or `--approve` on the command line. An approved escalation
// is reported, not failed. Invariant violations can never be approved.
export interface Approval {
  /** Action id, or "*" for every action (policy escalations). Absent on a capsule-change approval. */
  action?: string;
  /**
   * A capsule change key (capsule-diff.ts), e.g. "kernel.exec_allowlist//usr/bin/python3";
   * a trailing "*" matches every key with that prefix. `action` "*" does not approve these.
   */
  change?: string;
  principal_type?: string;
  resource_type?: string;
  reason: string;
  /** Where the approval came from (file path or "--approve"). */
  source: string;
}

export type ApprovalErrorCode =
  /** An approvals file cannot be read or is not JSON. */
  | 'unreadable'
  /** An approval entry has the wrong shape. */
  | 'invalid';

export class ApprovalError extends Error {
  constructor(
    readonly code: ApprovalErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export const APPROVALS_DIR = 'approvals';

/** Parses one approval file: an object or an array of {action, reason, principal_type?, resource_type?}. */
export function parseApprovalFile(path: string, text: string): Approval[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ApprovalError('unreadable', `${path}: ${(err as Error).message}`);
  }
  const items = Array.isArray(value) ? value : [value];
  return items.map((item, i) => {
    const where = Array.isArray(value) ? `${path}[${i}]` : path;
    if (!item || typeof item !== 'object') throw new ApprovalError('invalid', `${where}: expected an object`);
    const o = item as Record<string, unknown>;
    for (const k of Object.keys(o))
      if (!['action', 'change', 'principal_type', 'resource_type', 'reason'].includes(k))
        throw new ApprovalError('invalid', `${where}: unknown field "${k}"`);
    if ((o.action === undefined) === (o.change === undefined))
      throw new ApprovalError(
        'invalid',
        `${where}: exactly one of "action" (a policy escalation) or "change" (a capsule change) is required`,
      );
    if (o.change !== undefined && (typeof o.change !== 'string' || !o.change))
      throw new ApprovalError('invalid', `${where}: "change" must name a capsule change key`);
    if (o.action !== undefined && (typeof o.action !== 'string' || !o.action))
      throw new ApprovalError('invalid', `${where}: "action" must name an action (or "*")`);
    if (typeof o.reason !== 'string' || !o.reason.trim()) throw new ApprovalError('invalid', `${where}: "reason" is required`);
    for (const k of ['principal_type', 'resource_type'])
      if (o[k] !== undefined && typeof o[k] !== 'string') throw new ApprovalError('invalid', `${where}: "${k}" must be a string`);
    return {
      ...(o.action !== undefined ? { action: o.action as string } : { change: o.change as string }),
      principal_type: o.principal_type as string | undefined,
      resource_type: o.resource_type as string | undefined,
      reason: o.reason,
      source: path,
    };
  });
}

/** `--approve ACTION[,ACTION…]` (optionally `ACTION:reason`), or `--approve change=KEY` (one capsule change key, taken whole). */
export function parseApproveFlag(values: string[]): Approval[] {
  return values.flatMap((v): Approval[] =>
    v.startsWith('change=')
      ? [{ change: v.slice('change='.length), reason: 'approved with --approve', source: '--approve' }]
      : v
          .split(',')
          .filter(Boolean)
          .map((item) => {
            const [action, ...rest] = item.split(':');
            return { action: action.trim(), reason: rest.join(':').trim() || 'approved with --approve', source: '--approve' };
          }),
  );
}

export function findApproval(
  approvals: Approval[],
  env: { principalType: string; action: string; resourceType: string },
): Approval | undefined {
  return approvals.find(
    (a) =>
      (a.action === '*' || a.action === env.action) &&
      (a.principal_type === undefined || a.principal_type === env.principalType) &&
      (a.resource_type === undefined || a.resource_type === env.resourceType),
  );
}

export function findChangeApproval(approvals: Approval[], key: string): Approval | undefined {
  return approvals.find(
    (a) => a.change !== undefined && (a.change === key || (a.change.endsWith('*') && key.startsWith(a.change.slice(0, -1)))),
  );
}
