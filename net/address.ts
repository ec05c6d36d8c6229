// The one parser for "host:port" addresses (listen addresses in lilith.json and
// daemon settings, DNS upstreams). An IPv6 host must be bracketed ("[::1]:53"):
// without brackets "::1:53" could as well be the address ::1:53 with no port.

export interface HostPort {
  /** Host name or IP address, without brackets. */
  host: string;
  port: number;
}

const BRACKETED = /^\[([^\]]+)\]:(\d+)$/;
const PLAIN = /^([^:]+):(\d+)$/;

/**
 * Parses "host:port" or "[v6]:port" (port 0-65535; 0 = any free port when listening).
 * `what` names the setting in the error, e.g. "proxy.listen".
 */
export function parseHostPort(text: string, what?: string): HostPort {
  const m = BRACKETED.exec(text) ?? PLAIN.exec(text);
  if (!m || Number(m[2]) > 65535) throw new Error(`${what ? `${what}: ` : ''}expected host:port or [v6]:port, got '${text}'`);
  return { host: m[1], port: Number(m[2]) };
}
