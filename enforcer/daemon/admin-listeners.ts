// Where the admin API listens: the root-only unix socket for the daemon's whole life,
// and a loopback TCP address that can follow the capsule's proxy.admin_listen.
import { listenAdminSocket, listenAdminTcp, type AdminHandlers, type AdminServer } from './admin.js';

export class AdminListeners {
  #socketPath: string;
  #log: (line: string) => void;
  #handlers: AdminHandlers | null = null;
  #unix: AdminServer | null = null;
  #tcp: AdminServer | null = null;
  #tcpAddr: string | null = null;

  // Created before its handlers exist (the status they serve reports tcpAddress); open() listens.
  constructor(socketPath: string, log: (line: string) => void) {
    this.#socketPath = socketPath;
    this.#log = log;
  }

  async open(handlers: AdminHandlers): Promise<void> {
    this.#handlers = handlers;
    this.#unix = await listenAdminSocket(this.#socketPath, handlers);
  }

  /** The TCP address actually bound, or null. */
  get tcpAddress(): string | null {
    return this.#tcp?.address ?? null;
  }

  /**
   * Moves the TCP listener to `addr` ("off": leave it as it is). An address already
   * asked for is not retried: a failure is logged once, the unix socket keeps serving.
   */
  async bindTcp(addr: string): Promise<void> {
    if (!this.#handlers) throw new Error('AdminListeners.bindTcp before open()');
    if (addr === 'off' || addr === this.#tcpAddr) return;
    this.#tcpAddr = addr;
    await this.#tcp?.close();
    this.#tcp = null;
    try {
      this.#tcp = await listenAdminTcp(addr, this.#handlers);
      this.#log(`admin (healthz, readyz, metrics) on http://${this.#tcp.address}`);
    } catch (err) {
      this.#log(`cannot listen on admin address ${addr}: ${(err as Error).message} (status stays available on ${this.#socketPath})`);
    }
  }

  async close(): Promise<void> {
    await this.#tcp?.close();
    await this.#unix?.close();
  }
}
