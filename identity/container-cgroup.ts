// Which container and pod a process is in, read from its cgroup v2 path: the
// one fact about a container the kernel attests (a process cannot pick its
// cgroup without write access to cgroupfs, which agents never have). The
// shapes are the runtimes' own naming, for both cgroup drivers:
//
//   containerd, systemd driver  /kubepods.slice/kubepods-burstable.slice/
//                                 kubepods-burstable-pod<uid with _>.slice/cri-containerd-<id>.scope
//   containerd/cri-o, cgroupfs  /kubepods/burstable/pod<uid>/<id>   (cri-o: crio-<id>)
//   cri-o, systemd driver       …/kubepods-besteffort-pod<uid>.slice/crio-<id>.scope
//   kind / nested kubelet       /kubelet.slice/kubelet-kubepods.slice/…-pod<uid>.slice/cri-containerd-<id>.scope
//   docker                      /system.slice/docker-<id>.scope   or /docker/<id>
//   podman                      /machine.slice/libpod-<id>.scope[/container]
//                               /user.slice/…/user@1000.service/user.slice/libpod-<id>.scope
//                               /libpod_parent/libpod-<id>
//
// The runtimes' monitor processes (crio-conmon-<id>, libpod-conmon-<id>) are
// not the workload and are not attributed to the container.

export type ContainerRuntime = 'containerd' | 'cri-o' | 'docker' | 'podman' | 'unknown';

export interface ContainerCgroup {
  runtime: ContainerRuntime;
  /** Container ID (64 lowercase hex digits), when the path names one. */
  id?: string;
  /** Kubernetes pod UID (lowercase, dashed), when the path is under a pod's cgroup. */
  podUid?: string;
}

const ID = '[0-9a-f]{64}';
const SCOPE = new RegExp(`^(cri-containerd|crio|docker|libpod)-(${ID})(?:\\.scope)?$`);
const BARE = new RegExp(`^${ID}$`);
// pod<uid>: dashed (cgroupfs) or underscored (systemd driver) UUID, or the 32-hex UID of a static pod's mirror.
const POD = /(?:^|-)pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}|[0-9a-f]{32})(?:\.slice)?$/;

const RUNTIME_OF_PREFIX: Record<string, ContainerRuntime> = {
  'cri-containerd': 'containerd',
  crio: 'cri-o',
  docker: 'docker',
  libpod: 'podman',
};

/** The container and pod a cgroup path (relative to the cgroup2 root, "/…") belongs to, or null for none. */
export function parseContainerCgroup(path: string): ContainerCgroup | null {
  const parts = path.split('/').filter(Boolean);
  let podAt = -1;
  let podUid: string | undefined;
  for (let i = 0; i < parts.length; i++) {
    // Only below a kubepods level: "pod…" elsewhere is someone's own cgroup name.
    if (!parts.slice(0, i + 1).some((p) => p.includes('kubepods'))) continue;
    const m = POD.exec(parts[i]);
    if (m) {
      podAt = i;
      podUid = m[1].replaceAll('_', '-');
    }
  }
  let found: { runtime: ContainerRuntime; id: string } | null = null;
  for (let i = podAt + 1; i < parts.length; i++) {
    const p = parts[i];
    const scope = SCOPE.exec(p);
    if (scope) {
      found = { runtime: RUNTIME_OF_PREFIX[scope[1]], id: scope[2] };
      continue;
    }
    if (BARE.test(p)) {
      // cgroupfs driver: a bare id under a pod (containerd), or under /docker (docker).
      const runtime: ContainerRuntime = podUid ? 'containerd' : parts[i - 1] === 'docker' ? 'docker' : 'unknown';
      found = { runtime, id: p };
    }
  }
  if (!found && !podUid) return null;
  return { runtime: found?.runtime ?? 'unknown', ...(found ? { id: found.id } : {}), ...(podUid ? { podUid } : {}) };
}
