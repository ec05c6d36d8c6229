// Agent registration: `lilith run` puts a process in its agent cgroup and asks
// the enforcer who it is. The answer comes from attested facts (cgroup, uid,
// executable) matched against the capsule's registrations — never from what
// the launcher claims. Unknown or ambiguous agents are refused.
import type { Registration } from '../../capsule/config.js';
import { compileRegistrations, readProcessFacts, resolveIdentity, type ProcessFacts } from '../../identity/index.js';

export interface AgentRegistrationRequest {
  pid: number;
  /** The executable the launcher is about to exec: path selectors are matched against it. */
  exePath?: string;
  exeSha256?: string;
}

export type AgentRegistrationResult =
  | { ok: true; spiffe_id: string; registration: Registration; facts: ProcessFacts }
  | { ok: false; error: string };

export async function attestAgent(req: AgentRegistrationRequest, registrations: Registration[]): Promise<AgentRegistrationResult> {
  if (!Number.isInteger(req.pid) || req.pid <= 1) return { ok: false, error: `invalid pid ${String(req.pid)}` };
  let facts: ProcessFacts;
  try {
    facts = await readProcessFacts(req.pid);
  } catch (err) {
    return { ok: false, error: `cannot attest process ${req.pid}: ${(err as Error).message}` };
  }
  // Before exec the process runs the launcher binary; the identity is that of what it will exec.
  if (req.exePath) facts = { ...facts, exePath: req.exePath, exeSha256: req.exeSha256 };
  const resolved = resolveIdentity(facts, compileRegistrations(registrations));
  if (!resolved) {
    const seen = `cgroup ${facts.cgroupPath ?? '?'}, uid ${facts.uid ?? '?'}, exe ${facts.exePath ?? '?'}`;
    return { ok: false, error: `no registration matches process ${req.pid} (${seen}), or the match is ambiguous` };
  }
  return { ok: true, spiffe_id: resolved.spiffeId, registration: resolved.registration, facts };
}
