#!/bin/busybox sh
# initramfs /init for Lilith VM tests. Mounts the host root (virtio 9p, read-only), chroots
# into it and runs the guest entry for the scenarios named on the kernel command line, then
# powers off. Markers (LILITH-*) on the console let the host time boot and scenarios.
/bin/busybox mkdir -p /proc /sys /dev /usr/bin /usr/sbin /sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t devtmpfs dev /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sys /sys

fail() {
  echo "LILITH-FATAL $*"
  [ -d /results ] && echo "$*" > /results/fatal 2>/dev/null
  sync
  poweroff -f
  sleep 5
}

param() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^lilith\.$1=//p" | tail -n1; }
ROOT=$(param root); SCEN=$(param scenarios); BOOTLSM=$(param bootlsm); TIMEOUT=$(param timeout); SCENTIMEOUT=$(param scenariotimeout); NODEDIR=$(param nodedir); SDIRS=$(param scenariosdirs)
echo "LILITH-INIT kernel=$(uname -r) uptime=$(cut -d' ' -f1 /proc/uptime)"

for m in $(cat /modules.load 2>/dev/null); do
  insmod "/modules/$m" || echo "LILITH-WARN insmod $m failed"
done

mkdir -p /host /results
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 results /results \
  || fail "cannot mount the results share over 9p: $(cat /modules.note)"
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /host \
  || fail "cannot mount the host root over 9p: $(cat /modules.note)"
[ -d "/host$ROOT" ] || fail "project root $ROOT not visible in the host share"

# A checkout under /tmp or /run would be hidden by the guest's own tmpfs there: keep a handle on
# it now and bind it back afterwards.
case "$ROOT" in
  /tmp/*|/run/*) mkdir -p /project && mount --bind "/host$ROOT" /project || fail "cannot bind $ROOT"; REBIND=1 ;;
esac

# Fresh kernel filesystems inside the chroot: the host's /proc, /sys, /dev are not the guest's.
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t devtmpfs dev /host/dev
mkdir -p /host/dev/pts /host/dev/shm 2>/dev/null
mount -t devpts devpts /host/dev/pts 2>/dev/null
mount -t tmpfs tmpfs /host/dev/shm
mount -t tmpfs tmpfs /host/tmp
mount -t tmpfs tmpfs /host/run
mount -t securityfs securityfs /host/sys/kernel/security || echo "LILITH-WARN no securityfs"
mount -t bpf bpf /host/sys/fs/bpf || echo "LILITH-WARN no bpffs"
mount -t cgroup2 cgroup2 /host/sys/fs/cgroup || echo "LILITH-WARN no cgroup2"
if [ -n "$REBIND" ]; then
  mkdir -p "/host$ROOT" && mount --bind /project "/host$ROOT" || fail "cannot bind $ROOT back into the chroot"
fi
mkdir -p /host/tmp/lilith-results
mount --bind /results /host/tmp/lilith-results || fail "cannot bind the results share into the chroot"
ip link set lo up

EXTRA=""
for d in $(echo "$SDIRS" | tr ',' ' '); do EXTRA="$EXTRA --scenarios-dir $d"; done

echo "LILITH-BOOTED uptime=$(cut -d' ' -f1 /proc/uptime) lsm=$(cat /host/sys/kernel/security/lsm 2>/dev/null)"
# busybox timeout is the backstop; guest.js enforces the per-scenario timeout itself.
timeout -s KILL "$TIMEOUT" chroot /host /usr/bin/env -i HOME=/tmp TMPDIR=/tmp LANG=C.UTF-8 LILITH_WASM_LIFTOFF_ONLY=1 \
  PATH="$NODEDIR:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  /bin/sh -c 'cd "$1" && shift && exec node dist/vm-tests/guest.js "$@"' guest "$ROOT" \
  --results /tmp/lilith-results --boot-lsm "$BOOTLSM" --timeout "$SCENTIMEOUT" $EXTRA $(echo "$SCEN" | tr ',' ' ')
rc=$?
echo "$rc" > /results/status
echo "LILITH-DONE status=$rc uptime=$(cut -d' ' -f1 /proc/uptime)"
umount /host/tmp/lilith-results 2>/dev/null
sync
umount /results 2>/dev/null
poweroff -f
