// Map access by fd: works the same for maps of an open object and for maps
// re-opened from a bpffs pin.
#include "common.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cstring>
#include <vector>

namespace lilith {

// objGet(path) -> fd | -errno (any pinned BPF object: map, program, link)
static Napi::Value ObjGet(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (!CheckArgs(info, 1) || !ArgStr(info, 0, &path)) return env.Undefined();
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) return Errno(env, errno);
  return Napi::Number::New(env, fd);
}

// objPin(fd, path) -> 0 | -errno
static Napi::Value ObjPin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t fd;
  std::string path;
  if (!CheckArgs(info, 2) || !ArgI32(info, 0, &fd) || !ArgStr(info, 1, &path)) return env.Undefined();
  if (bpf_obj_pin(fd, path.c_str()) < 0) return Errno(env, errno);
  return Napi::Number::New(env, 0);
}

// closeFd(fd) -> 0 | -errno
static Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t fd;
  if (!CheckArgs(info, 1) || !ArgI32(info, 0, &fd)) return env.Undefined();
  if (close(fd) < 0) return Errno(env, errno);
  return Napi::Number::New(env, 0);
}

// mapInfo(fd) -> {name, type, keySize, valueSize, maxEntries, id, flags} | -errno
static Napi::Value MapInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t fd;
  if (!CheckArgs(info, 1) || !ArgI32(info, 0, &fd)) return env.Undefined();
  struct bpf_map_info mi;
  memset(&mi, 0, sizeof mi);
  __u32 len = sizeof mi;
  int err = bpf_obj_get_info_by_fd(fd, &mi, &len);
  if (err < 0) return Errno(env, err);
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", Napi::String::New(env, mi.name, strnlen(mi.name, sizeof mi.name)));
  o.Set("type", Napi::Number::New(env, mi.type));
  o.Set("keySize", Napi::Number::New(env, mi.key_size));
  o.Set("valueSize", Napi::Number::New(env, mi.value_size));
  o.Set("maxEntries", Napi::Number::New(env, mi.max_entries));
  o.Set("id", Napi::Number::New(env, mi.id));
  o.Set("flags", Napi::Number::New(env, mi.map_flags));
  return o;
}

// The tag is the kernel's hash of the program's instructions (map references
// zeroed): the same object loaded on the same kernel gets the same tag.
static Napi::Object ProgInfoObject(Napi::Env env, const struct bpf_prog_info& pi) {
  static const char hex[] = "0123456789abcdef";
  char tag[2 * BPF_TAG_SIZE + 1];
  for (int i = 0; i < BPF_TAG_SIZE; i++) {
    tag[2 * i] = hex[pi.tag[i] >> 4];
    tag[2 * i + 1] = hex[pi.tag[i] & 0xf];
  }
  tag[2 * BPF_TAG_SIZE] = 0;
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", Napi::String::New(env, pi.name, strnlen(pi.name, sizeof pi.name)));
  o.Set("type", Napi::Number::New(env, pi.type));
  o.Set("id", Napi::Number::New(env, pi.id));
  o.Set("tag", Napi::String::New(env, tag));
  return o;
}

// progInfo(fd) -> {name, type, id, tag} | -errno
static Napi::Value ProgInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t fd;
  if (!CheckArgs(info, 1) || !ArgI32(info, 0, &fd)) return env.Undefined();
  struct bpf_prog_info pi;
  memset(&pi, 0, sizeof pi);
  __u32 len = sizeof pi;
  int err = bpf_obj_get_info_by_fd(fd, &pi, &len);
  if (err < 0) return Errno(env, err);
  Napi::Object o = Napi::Object::New(env);
  return ProgInfoObject(env, pi);
}

// progInfoById(id) -> {name, type, id, tag} | -errno: the program a link runs (linkInfo's progId).
static Napi::Value ProgInfoById(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t id;
  if (!CheckArgs(info, 1) || !ArgU32(info, 0, &id)) return env.Undefined();
  int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) return Errno(env, fd);
  struct bpf_prog_info pi;
  memset(&pi, 0, sizeof pi);
  __u32 len = sizeof pi;
  int err = bpf_obj_get_info_by_fd(fd, &pi, &len);
  close(fd);
  if (err < 0) return Errno(env, err);
  return ProgInfoObject(env, pi);
}

// linkInfo(fd) -> {id, type, progId, cgroupId?, attachType?} | -errno
static Napi::Value LinkInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t fd;
  if (!CheckArgs(info, 1) || !ArgI32(info, 0, &fd)) return env.Undefined();
  struct bpf_link_info li;
  memset(&li, 0, sizeof li);
  __u32 len = sizeof li;
  int err = bpf_obj_get_info_by_fd(fd, &li, &len);
  if (err < 0) return Errno(env, err);
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", Napi::Number::New(env, li.id));
  o.Set("type", Napi::Number::New(env, li.type));
  o.Set("progId", Napi::Number::New(env, li.prog_id));
  if (li.type == BPF_LINK_TYPE_CGROUP) {
    o.Set("cgroupId", Napi::BigInt::New(env, (uint64_t)li.cgroup.cgroup_id));
    o.Set("attachType", Napi::Number::New(env, li.cgroup.attach_type));
  }
  return o;
}

// mapLookup(fd, key, valueLen) -> Buffer | -errno (-ENOENT when absent)
static Napi::Value MapLookup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t fd;
  uint32_t vlen;
  Napi::Buffer<uint8_t> key;
  if (!CheckArgs(info, 3) || !ArgI32(info, 0, &fd) || !ArgBuf(info, 1, &key) || !ArgU32(info, 2, &vlen))
    return env.Undefined();
  Napi::Buffer<uint8_t> value = Napi::Buffer<uint8_t>::New(env, vlen);
  memset(value.Data(), 0, vlen);
  int err = bpf_map_lookup_elem(fd, key.Data(), value.Data());
  if (err < 0) return Errno(env, err);
  return value;
}

// mapUpdate(fd, key, value, flags) -> 0 | -errno
static Napi::Value MapUpdate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t fd;
  uint32_t flags;
  Napi::Buffer<uint8_t> key, value;
  if (!CheckArgs(info, 4) || !ArgI32(info, 0, &fd) || !ArgBuf(info, 1, &key) || !ArgBuf(info, 2, &value) ||
      !ArgU32(info, 3, &flags))
    return env.Undefined();
  return Napi::Number::New(env, bpf_map_update_elem(fd, key.Data(), value.Data(), flags));
}

// mapDelete(fd, key) -> 0 | -errno (-ENOENT when absent)
static Napi::Value MapDelete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t fd;
  Napi::Buffer<uint8_t> key;
  if (!CheckArgs(info, 2) || !ArgI32(info, 0, &fd) || !ArgBuf(info, 1, &key)) return env.Undefined();
  return Napi::Number::New(env, bpf_map_delete_elem(fd, key.Data()));
}

// mapKeys(fd, keyLen, limit) -> Buffer[] | -errno. A hash map modified during
// the walk can restart from the first key, so the walk stops after `limit`.
static Napi::Value MapKeys(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t fd;
  uint32_t klen, limit;
  if (!CheckArgs(info, 3) || !ArgI32(info, 0, &fd) || !ArgU32(info, 1, &klen) || !ArgU32(info, 2, &limit))
    return env.Undefined();
  std::vector<uint8_t> cur(klen), next(klen);
  Napi::Array out = Napi::Array::New(env);
  const void* prev = nullptr;  // NULL asks for the first key
  uint32_t n = 0;
  while (n < limit) {
    int err = bpf_map_get_next_key(fd, prev, next.data());
    if (err == -ENOENT) break;
    if (err < 0) return Errno(env, err);
    out.Set(n++, Napi::Buffer<uint8_t>::Copy(env, next.data(), klen));
    cur.swap(next);
    prev = cur.data();
  }
  return out;
}

// numPossibleCpus() -> n | -errno (per-CPU map values hold one slot per CPU)
static Napi::Value NumPossibleCpus(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), libbpf_num_possible_cpus());
}

void InitMap(Napi::Env env, Napi::Object exports) {
  exports.Set("objGet", Napi::Function::New(env, ObjGet));
  exports.Set("objPin", Napi::Function::New(env, ObjPin));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
  exports.Set("mapInfo", Napi::Function::New(env, MapInfo));
  exports.Set("progInfo", Napi::Function::New(env, ProgInfo));
  exports.Set("progInfoById", Napi::Function::New(env, ProgInfoById));
  exports.Set("linkInfo", Napi::Function::New(env, LinkInfo));
  exports.Set("mapLookup", Napi::Function::New(env, MapLookup));
  exports.Set("mapUpdate", Napi::Function::New(env, MapUpdate));
  exports.Set("mapDelete", Napi::Function::New(env, MapDelete));
  exports.Set("mapKeys", Napi::Function::New(env, MapKeys));
  exports.Set("numPossibleCpus", Napi::Function::New(env, NumPossibleCpus));
}

}  // namespace lilith
