// Escalations a human approved on purpose: files `approvals/*.json` in the
// head policy tree, or `--approve` on the command line. An approved escalation
// is reported, not failed. Invariant violations can never be approved.
import { actionKey } from './env.js';

export interface Approval {
  /**
   * The action of a policy escalation: namespace-qualified (`App::Action::"read"`,
   * `Action::"read"`), or a bare id (`read`), which names the un-namespaced
   * `Action::"read"` only; "*" for every action. Absent on a capsule-change approval.
   */
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

/** Parses one approval file: an object or an array of {action | change, reason, principal_type?, resource_type?}. */
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
    if (typeof o.action === 'string') checkAction(where, o.action);
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

// A namespace-qualified action uid: `NS::…::Action::"id"` (the id a JSON string).
const QUALIFIED = /^((?:[A-Za-z_][A-Za-z0-9_]*::)*Action)::("(?:[^"\\]|\\.)*")$/s;

/** The action type and id a qualified action names; undefined: not qualified. */
function qualified(action: string): { type: string; id: string } | undefined {
  const m = QUALIFIED.exec(action);
  if (!m) return undefined;
  try {
    return { type: m[1], id: JSON.parse(m[2]) as string };
  } catch {
    return undefined;
  }
}

/** A bare id is taken as `Action::"id"`; anything with `::` must be a well-formed qualified action uid. */
function checkAction(where: string, action: string): void {
  if (action !== '*' && action.includes('::') && !qualified(action))
    throw new ApprovalError(
      'invalid',
      `${where}: "action" ${JSON.stringify(action)} is neither a bare action id nor a qualified action uid like App::Action::"read"`,
    );
}

/** Splits on commas outside double quotes (a quoted action id may hold commas). */
function splitItems(v: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < v.length; i++) {
    const c = v[i];
    if (quoted && c === '\\') {
      cur += c + (v[i + 1] ?? '');
      i++;
      continue;
    }
    if (c === '"') quoted = !quoted;
    if (c === ',' && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out.map((x) => x.trim()).filter(Boolean);
}

/**
 * `--approve ACTION[,ACTION…]` (optionally `ACTION:reason`; ACTION a bare id or a
 * qualified uid such as `App::Action::"read"`), or `--approve change=KEY` (one
 * capsule change key, taken whole).
 */
export function parseApproveFlag(values: string[]): Approval[] {
  return values.flatMap((v): Approval[] =>
    v.startsWith('change=')
      ? [{ change: v.slice('change='.length), reason: 'approved with --approve', source: '--approve' }]
      : splitItems(v).map((item) => {
          // A qualified uid holds "::" and a quoted id; the reason follows its closing quote.
          const q = /^((?:[A-Za-z_][A-Za-z0-9_]*::)*Action::"(?:[^"\\]|\\.)*")(?::(.*))?$/s.exec(item);
          if (!q && item.includes('::')) checkAction('--approve', item);
          const [action, reason] = q ? [q[1], q[2] ?? ''] : [item.split(':')[0], item.split(':').slice(1).join(':')];
          return { action: action.trim(), reason: reason.trim() || 'approved with --approve', source: '--approve' };
        }),
  );
}

/** Does an approval's action name this environment's action? A bare id names only the un-namespaced `Action`. */
function actionMatches(action: string, env: { action: string; actionType: string }): boolean {
  if (action === '*') return true;
  const q = qualified(action);
  return q ? q.type === env.actionType && q.id === env.action : env.actionType === 'Action' && action === env.action;
}

/** The action as an approval names it: the bare id for the un-namespaced `Action`, else the qualified uid. */
export function approvalAction(env: { action: string; actionType: string }): string {
  // Ids a bare form would misread (a "*", separators of --approve) stay qualified.
  return env.actionType === 'Action' && env.action !== '*' && !/[:,"]/.test(env.action)
    ? env.action
    : actionKey(env.actionType, env.action);
}

export function findApproval(
  approvals: Approval[],
  env: { principalType: string; action: string; actionType: string; resourceType: string },
): Approval | undefined {
  return approvals.find(
    (a) =>
      a.action !== undefined &&
      actionMatches(a.action, env) &&
      (a.principal_type === undefined || a.principal_type === env.principalType) &&
      (a.resource_type === undefined || a.resource_type === env.resourceType),
  );
}

export function findChangeApproval(approvals: Approval[], key: string): Approval | undefined {
  return approvals.find(
    (a) => a.change !== undefined && (a.change === key || (a.change.endsWith('*') && key.startsWith(a.change.slice(0, -1)))),
  );
}
