// sd_notify(3) for the enforcer: READY=1, WATCHDOG=1, STOPPING=1 to systemd's
// NOTIFY_SOCKET. Node cannot send a datagram on a unix socket, and the enforcer
// already ships a native addon, so the one sendto() lives there (bpf/addon/src/sys.cc)
// rather than in a new dependency. Loading the addon needs no BPF privilege.
import { native } from './addon.js';
import { BpfError } from './errors.js';

/** Sends one notification; throws BpfError (op 'sd_notify', errno) when the datagram was not sent. */
export function sdNotify(socket: string, message: string): void {
  const r = native().sdNotify(socket, message);
  if (typeof r !== 'number' || r < 0) throw new BpfError('sd_notify', typeof r === 'number' ? -r : 22, { target: socket });
}
