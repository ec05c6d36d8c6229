// Which program implements which hook, in which object. One object per attach
// family (bpf/src/<object>.bpf.c); all share the maps pinned by name.

export type ProgramKind = 'lsm' | 'cgroup';

export interface ProgramSpec {
  readonly object: string;
  /** C function name (≤ 15 characters: the kernel truncates program names). */
  readonly program: string;
  /** Hook name reported in Kernel.hooks. */
  readonly hook: string;
  readonly kind: ProgramKind;
  /** Part of the interception path (connect/sendmsg redirection + original destination). */
  readonly intercept: boolean;
  /**
   * Program and attach type numbers, for sections Debian's libbpf 1.1 does not
   * know (cgroup/connect_unix): set before load.
   */
  readonly types?: { readonly prog: number; readonly attach: number };
  /**
   * Attached only in cgroup-only mode (BPF-LSM mode has an LSM hook for the
   * same job), and optional: a kernel without the hook lists it in
   * Kernel.hooks.missing instead of failing attach.
   */
  readonly cgroupModeOnly?: boolean;
}

const lsm = (object: string, program: string, hook: string): ProgramSpec => ({ object, program, hook, kind: 'lsm', intercept: false });
const cg = (object: string, program: string, hook: string, intercept = true): ProgramSpec => ({
  object,
  program,
  hook,
  kind: 'cgroup',
  intercept,
});

// enum bpf_prog_type / bpf_attach_type values (uapi, stable).
const BPF_PROG_TYPE_CGROUP_SOCK_ADDR = 18;
const BPF_CGROUP_UNIX_CONNECT = 49; // Linux 6.7
const BPF_CGROUP_UNIX_SENDMSG = 50;
const cgUnix = (program: string, hook: string, attach: number): ProgramSpec => ({
  object: 'cgroup_unix',
  program,
  hook,
  kind: 'cgroup',
  intercept: false,
  types: { prog: BPF_PROG_TYPE_CGROUP_SOCK_ADDR, attach },
  cgroupModeOnly: true,
});

export const PROGRAMS: readonly ProgramSpec[] = [
  lsm('lsm_task', 'lil_bprm_check', 'bprm_check_security'),
  lsm('lsm_task', 'lil_bprm_done', 'bprm_committed_creds'),
  lsm('lsm_task', 'lil_task_alloc', 'task_alloc'),
  lsm('lsm_task', 'lil_task_free', 'task_free'),
  lsm('lsm_net', 'lil_sock_create', 'socket_create'),
  lsm('lsm_net', 'lil_sock_post', 'socket_post_create'),
  lsm('lsm_net', 'lil_sock_connect', 'socket_connect'),
  lsm('lsm_net', 'lil_sock_sendmsg', 'socket_sendmsg'),
  lsm('lsm_unix', 'lil_unix_conn', 'unix_stream_connect'),
  lsm('lsm_unix', 'lil_unix_send', 'unix_may_send'),
  lsm('lsm_mem', 'lil_mmap_file', 'mmap_file'),
  lsm('lsm_mem', 'lil_mprotect', 'file_mprotect'),
  lsm('lsm_mem', 'lil_mmap_addr', 'mmap_addr'),
  lsm('lsm_guard', 'lil_ptrace_chk', 'ptrace_access_check'),
  lsm('lsm_guard', 'lil_task_kill', 'task_kill'),
  lsm('lsm_guard', 'lil_file_fcntl', 'file_fcntl'),
  lsm('lsm_guard', 'lil_file_ioctl', 'file_ioctl'),
  cg('cgroup_connect', 'lil_connect4', 'cgroup/connect4'),
  cg('cgroup_connect', 'lil_connect6', 'cgroup/connect6'),
  cg('cgroup_connect', 'lil_sendmsg4', 'cgroup/sendmsg4'),
  cg('cgroup_connect', 'lil_sendmsg6', 'cgroup/sendmsg6'),
  cg('cgroup_connect', 'lil_getpeer4', 'cgroup/getpeername4'),
  cg('cgroup_connect', 'lil_getpeer6', 'cgroup/getpeername6'),
  cg('cgroup_connect', 'lil_recvmsg4', 'cgroup/recvmsg4'),
  cg('cgroup_connect', 'lil_recvmsg6', 'cgroup/recvmsg6'),
  cg('cgroup_sock', 'lil_cg_sock', 'cgroup/sock_create', false),
  cg('sockops', 'lil_sockops', 'sockops'),
  cg('cgroup_skb', 'lil_dns_egress', 'cgroup_skb/egress'),
  cgUnix('lil_conn_unix', 'cgroup/connect_unix', BPF_CGROUP_UNIX_CONNECT),
  cgUnix('lil_send_unix', 'cgroup/sendmsg_unix', BPF_CGROUP_UNIX_SENDMSG),
];

/** Maps every object declares (bpf/src/maps.h), pinned as <pinRoot>/<name>. */
export const MAP_NAMES = [
  'lil_config',
  'lil_heartbeat',
  'lil_task',
  'lil_cgroups',
  'lil_classify',
  'lil_exec_reg',
  'lil_exec_ok',
  'lil_exec_id',
  'lil_sk_tag',
  'lil_orig_ck',
  'lil_orig_tp',
  'lil_unix_ok',
  'lil_events',
] as const;
export type MapName = (typeof MAP_NAMES)[number];
