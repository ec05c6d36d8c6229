// What the kernel room reports about itself; the daemon puts it under `kernel` in
// its status. Owned here so the daemon depends on the kernel room, not the reverse.
export interface KernelStatus {
  mode: 'bpf-lsm' | 'cgroup-only' | 'off';
  hooks: string[];
  heartbeat_age_ms: number | null;
  /** Pinned programs this daemon found from another build and replaced instead of re-adopting. */
  replaced_pins?: Array<{ program: string; pinned_tag: string; build_tag: string }>;
  error?: string;
}
