// Small system calls the loader needs and Node lacks: mount(2), the monotonic
// clock BPF's bpf_ktime_get_ns() uses, the captured libbpf log, and sd_notify
// (Node cannot send a datagram on a unix socket).
#include "common.h"

#include <cstddef>
#include <cstring>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

namespace lilith {

// mount(source, target, fstype, flags?, data?) -> 0 | -errno
static Napi::Value Mount(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string src, target, fstype, data;
  if (!CheckArgs(info, 3) || !ArgStr(info, 0, &src) || !ArgStr(info, 1, &target) || !ArgStr(info, 2, &fstype))
    return env.Undefined();
  unsigned long flags = info.Length() > 3 && info[3].IsNumber() ? info[3].As<Napi::Number>().Uint32Value() : 0;
  bool has_data = info.Length() > 4 && info[4].IsString();
  if (has_data) data = info[4].As<Napi::String>().Utf8Value();
  if (mount(src.c_str(), target.c_str(), fstype.c_str(), flags, has_data ? data.c_str() : nullptr) < 0)
    return Errno(env, errno);
  return Napi::Number::New(env, 0);
}

// umount(target) -> 0 | -errno
static Napi::Value Umount(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string target;
  if (!CheckArgs(info, 1) || !ArgStr(info, 0, &target)) return env.Undefined();
  if (umount(target.c_str()) < 0) return Errno(env, errno);
  return Napi::Number::New(env, 0);
}

// monotonicNs() -> bigint: CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns().
static Napi::Value MonotonicNs(const Napi::CallbackInfo& info) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t ns = (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
  return Napi::BigInt::New(info.Env(), ns);
}

// lastLog() -> string: libbpf output since the last open/load/attach/pin call.
static Napi::Value LastLog(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), LogTake()); }

// sdNotify(socket, message) -> bytes sent | -errno: one datagram to systemd's
// NOTIFY_SOCKET ("/path" or "@abstract"), the sd_notify(3) protocol. Never
// blocks: a full queue is -EAGAIN, a missed ping the next one makes up for.
static Napi::Value SdNotify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path, msg;
  if (!CheckArgs(info, 2) || !ArgStr(info, 0, &path) || !ArgStr(info, 1, &msg)) return env.Undefined();
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  if (path.size() < 2 || path.size() > sizeof(sa.sun_path) || (path[0] != '/' && path[0] != '@')) return Errno(env, EINVAL);
  memcpy(sa.sun_path, path.data(), path.size());
  if (path[0] == '@') sa.sun_path[0] = 0;
  socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path.size());
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno(env, errno);
  ssize_t n = sendto(fd, msg.data(), msg.size(), MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr*)&sa, len);
  int e = errno;
  close(fd);
  if (n < 0) return Errno(env, e);
  return Napi::Number::New(env, (double)n);
}

void InitSys(Napi::Env env, Napi::Object exports) {
  exports.Set("mount", Napi::Function::New(env, Mount));
  exports.Set("umount", Napi::Function::New(env, Umount));
  exports.Set("monotonicNs", Napi::Function::New(env, MonotonicNs));
  exports.Set("lastLog", Napi::Function::New(env, LastLog));
  exports.Set("sdNotify", Napi::Function::New(env, SdNotify));
}

}  // namespace lilith
