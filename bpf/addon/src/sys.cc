// Small system calls the loader needs and Node lacks: mount(2), the monotonic
// clock BPF's bpf_ktime_get_ns() uses, and the captured libbpf log.
#include "common.h"

#include <sys/mount.h>
#include <time.h>

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

void InitSys(Napi::Env env, Napi::Object exports) {
  exports.Set("mount", Napi::Function::New(env, Mount));
  exports.Set("umount", Napi::Function::New(env, Umount));
  exports.Set("monotonicNs", Napi::Function::New(env, MonotonicNs));
  exports.Set("lastLog", Napi::Function::New(env, LastLog));
}

}  // namespace lilith
