// BPF objects and their programs: open (CO-RE), load, close, list, set globals
// and map sizes before load, attach. Objects live in a handle table.
#include "common.h"

#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <unordered_map>

namespace lilith {

static std::unordered_map<uint32_t, bpf_object*> g_objects;
static uint32_t g_next_object = 1;

bpf_object* GetObject(uint32_t handle) {
  auto it = g_objects.find(handle);
  return it == g_objects.end() ? nullptr : it->second;
}

// Resolves (object handle, program name) or returns nullptr with *err set.
static bpf_program* FindProgram(const Napi::CallbackInfo& info, int* err) {
  uint32_t h;
  std::string name;
  *err = 0;
  if (!CheckArgs(info, 2) || !ArgU32(info, 0, &h) || !ArgStr(info, 1, &name)) return nullptr;
  bpf_object* obj = GetObject(h);
  if (!obj) { *err = -EBADF; return nullptr; }
  bpf_program* prog = bpf_object__find_program_by_name(obj, name.c_str());
  if (!prog) *err = -ENOENT;
  return prog;
}

static bpf_map* FindMap(const Napi::CallbackInfo& info, int* err) {
  uint32_t h;
  std::string name;
  *err = 0;
  if (!CheckArgs(info, 2) || !ArgU32(info, 0, &h) || !ArgStr(info, 1, &name)) return nullptr;
  bpf_object* obj = GetObject(h);
  if (!obj) { *err = -EBADF; return nullptr; }
  bpf_map* map = bpf_object__find_map_by_name(obj, name.c_str());
  if (!map) *err = -ENOENT;
  return map;
}

// objectOpen(path, pinRoot?) -> handle | -errno
static Napi::Value ObjectOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path, pin_root;
  if (!CheckArgs(info, 1) || !ArgStr(info, 0, &path)) return env.Undefined();
  bool has_pin_root = info.Length() > 1 && info[1].IsString();
  if (has_pin_root) pin_root = info[1].As<Napi::String>().Utf8Value();
  LIBBPF_OPTS(bpf_object_open_opts, opts);
  if (has_pin_root) opts.pin_root_path = pin_root.c_str();
  LogBegin();
  errno = 0;
  bpf_object* obj = bpf_object__open_file(path.c_str(), &opts);
  if (!obj) return Errno(env, errno ? errno : ENOENT);
  uint32_t h = g_next_object++;
  g_objects[h] = obj;
  return Napi::Number::New(env, h);
}

// objectLoad(handle) -> 0 | -errno (the verifier log is in lastLog())
static Napi::Value ObjectLoad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t h;
  if (!CheckArgs(info, 1) || !ArgU32(info, 0, &h)) return env.Undefined();
  bpf_object* obj = GetObject(h);
  if (!obj) return Errno(env, EBADF);
  LogBegin();
  int err = bpf_object__load(obj);
  return Napi::Number::New(env, err < 0 ? err : 0);
}

// objectClose(handle) -> 0 | -EBADF
static Napi::Value ObjectClose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t h;
  if (!CheckArgs(info, 1) || !ArgU32(info, 0, &h)) return env.Undefined();
  auto it = g_objects.find(h);
  if (it == g_objects.end()) return Errno(env, EBADF);
  bpf_object__close(it->second);
  g_objects.erase(it);
  return Napi::Number::New(env, 0);
}

// objectPrograms(handle) -> [{name, section, type, autoload}] | -errno
static Napi::Value ObjectPrograms(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t h;
  if (!CheckArgs(info, 1) || !ArgU32(info, 0, &h)) return env.Undefined();
  bpf_object* obj = GetObject(h);
  if (!obj) return Errno(env, EBADF);
  Napi::Array out = Napi::Array::New(env);
  uint32_t i = 0;
  bpf_program* prog;
  bpf_object__for_each_program(prog, obj) {
    Napi::Object p = Napi::Object::New(env);
    p.Set("name", bpf_program__name(prog));
    p.Set("section", bpf_program__section_name(prog));
    p.Set("type", Napi::Number::New(env, bpf_program__type(prog)));
    p.Set("expectedAttachType", Napi::Number::New(env, bpf_program__expected_attach_type(prog)));
    p.Set("autoload", Napi::Boolean::New(env, bpf_program__autoload(prog)));
    out.Set(i++, p);
  }
  return out;
}

// objectMaps(handle) -> [{name, type, keySize, valueSize, maxEntries, fd}] | -errno
static Napi::Value ObjectMaps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t h;
  if (!CheckArgs(info, 1) || !ArgU32(info, 0, &h)) return env.Undefined();
  bpf_object* obj = GetObject(h);
  if (!obj) return Errno(env, EBADF);
  Napi::Array out = Napi::Array::New(env);
  uint32_t i = 0;
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    Napi::Object m = Napi::Object::New(env);
    m.Set("name", bpf_map__name(map));
    m.Set("type", Napi::Number::New(env, bpf_map__type(map)));
    m.Set("keySize", Napi::Number::New(env, bpf_map__key_size(map)));
    m.Set("valueSize", Napi::Number::New(env, bpf_map__value_size(map)));
    m.Set("maxEntries", Napi::Number::New(env, bpf_map__max_entries(map)));
    m.Set("fd", Napi::Number::New(env, bpf_map__fd(map)));
    out.Set(i++, m);
  }
  return out;
}

// programFd(handle, name) -> fd | -errno (valid after load)
static Napi::Value ProgramFd(const Napi::CallbackInfo& info) {
  int err;
  bpf_program* prog = FindProgram(info, &err);
  if (!prog) return err ? Errno(info.Env(), err) : info.Env().Undefined();
  return Napi::Number::New(info.Env(), bpf_program__fd(prog));
}

// programSetAutoload(handle, name, on) -> 0 | -errno (before load)
static Napi::Value ProgramSetAutoload(const Napi::CallbackInfo& info) {
  int err;
  bpf_program* prog = FindProgram(info, &err);
  if (!prog) return err ? Errno(info.Env(), err) : info.Env().Undefined();
  bool on = info.Length() > 2 && info[2].ToBoolean().Value();
  return Napi::Number::New(info.Env(), bpf_program__set_autoload(prog, on));
}

// programSetType(handle, name, progType, expectedAttachType) -> 0 | -errno (before load).
// For sections this libbpf does not know (cgroup/connect_unix is newer than
// Debian's libbpf 1.1): the caller names the types by number.
static Napi::Value ProgramSetType(const Napi::CallbackInfo& info) {
  int err;
  bpf_program* prog = FindProgram(info, &err);
  if (!prog) return err ? Errno(info.Env(), err) : info.Env().Undefined();
  if (info.Length() < 4 || !info[2].IsNumber() || !info[3].IsNumber()) return Errno(info.Env(), EINVAL);
  int r = bpf_program__set_type(prog, static_cast<bpf_prog_type>(info[2].As<Napi::Number>().Int32Value()));
  if (r == 0) r = bpf_program__set_expected_attach_type(prog, static_cast<bpf_attach_type>(info[3].As<Napi::Number>().Int32Value()));
  return Napi::Number::New(info.Env(), r);
}

static Napi::Value LinkResult(Napi::Env env, bpf_link* link) {
  if (!link) return Errno(env, errno ? errno : EINVAL);
  return Napi::Number::New(env, AddLink(link));
}

// programAttach(handle, name) -> link handle | -errno (auto-attach from SEC)
static Napi::Value ProgramAttach(const Napi::CallbackInfo& info) {
  int err;
  bpf_program* prog = FindProgram(info, &err);
  if (!prog) return err ? Errno(info.Env(), err) : info.Env().Undefined();
  LogBegin();
  errno = 0;
  return LinkResult(info.Env(), bpf_program__attach(prog));
}

// programAttachLsm(handle, name) -> link handle | -errno
static Napi::Value ProgramAttachLsm(const Napi::CallbackInfo& info) {
  int err;
  bpf_program* prog = FindProgram(info, &err);
  if (!prog) return err ? Errno(info.Env(), err) : info.Env().Undefined();
  LogBegin();
  errno = 0;
  return LinkResult(info.Env(), bpf_program__attach_lsm(prog));
}

// programAttachCgroup(handle, name, cgroupDir) -> link handle | -errno.
// The attach type comes from the program's SEC (connect4, sock_create, ...).
// The link keeps its own reference to the cgroup, so the dir fd is closed here.
static Napi::Value ProgramAttachCgroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int err;
  bpf_program* prog = FindProgram(info, &err);
  if (!prog) return err ? Errno(env, err) : env.Undefined();
  std::string dir;
  if (!CheckArgs(info, 3) || !ArgStr(info, 2, &dir)) return env.Undefined();
  int cg = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cg < 0) return Errno(env, errno);
  LogBegin();
  errno = 0;
  bpf_link* link = bpf_program__attach_cgroup(prog, cg);
  int saved = errno;
  close(cg);
  errno = saved;
  return LinkResult(env, link);
}

// Finds a global variable in the .rodata/.data/.bss/.kconfig-free data sections
// through BTF and returns where its initial bytes live (before load).
static int FindGlobal(bpf_object* obj, const std::string& var, uint8_t** where, uint32_t* size) {
  const btf* b = bpf_object__btf(obj);
  if (!b) return -ENOENT;
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    if (!bpf_map__is_internal(map)) continue;
    const char* mname = bpf_map__name(map);
    const char* dot = strchr(mname, '.');
    if (!dot) continue;
    // Internal map "<obj>.rodata" corresponds to DATASEC ".rodata".
    int sec_id = btf__find_by_name_kind(b, dot, BTF_KIND_DATASEC);
    if (sec_id < 0) continue;
    const btf_type* sec = btf__type_by_id(b, sec_id);
    const btf_var_secinfo* vs = btf_var_secinfos(sec);
    for (uint16_t i = 0; i < btf_vlen(sec); i++, vs++) {
      const btf_type* v = btf__type_by_id(b, vs->type);
      if (var != btf__name_by_offset(b, v->name_off)) continue;
      size_t sz = 0;
      void* data = const_cast<void*>(bpf_map__initial_value(map, &sz));
      if (!data || vs->offset + vs->size > sz) return -EINVAL;
      *where = static_cast<uint8_t*>(data) + vs->offset;
      *size = vs->size;
      return 0;
    }
  }
  return -ENOENT;
}

// objectSetGlobal(handle, varName, bytes) -> 0 | -errno. Before load only
// (after load .rodata is frozen). -EMSGSIZE when the size does not match.
static Napi::Value ObjectSetGlobal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t h;
  std::string var;
  Napi::Buffer<uint8_t> buf;
  if (!CheckArgs(info, 3) || !ArgU32(info, 0, &h) || !ArgStr(info, 1, &var) || !ArgBuf(info, 2, &buf))
    return env.Undefined();
  bpf_object* obj = GetObject(h);
  if (!obj) return Errno(env, EBADF);
  uint8_t* where;
  uint32_t size;
  int err = FindGlobal(obj, var, &where, &size);
  if (err) return Errno(env, err);
  if (size != buf.Length()) return Errno(env, EMSGSIZE);
  memcpy(where, buf.Data(), size);
  return Napi::Number::New(env, 0);
}

// mapFdByName(handle, name) -> fd | -errno
static Napi::Value MapFdByName(const Napi::CallbackInfo& info) {
  int err;
  bpf_map* map = FindMap(info, &err);
  if (!map) return err ? Errno(info.Env(), err) : info.Env().Undefined();
  return Napi::Number::New(info.Env(), bpf_map__fd(map));
}

// mapSetMaxEntries(handle, name, n) -> 0 | -errno (before load)
static Napi::Value MapSetMaxEntries(const Napi::CallbackInfo& info) {
  int err;
  bpf_map* map = FindMap(info, &err);
  if (!map) return err ? Errno(info.Env(), err) : info.Env().Undefined();
  uint32_t n;
  if (!CheckArgs(info, 3) || !ArgU32(info, 2, &n)) return info.Env().Undefined();
  return Napi::Number::New(info.Env(), bpf_map__set_max_entries(map, n));
}

// mapPinPath(handle, name) -> pin path | null (set by LIBBPF_PIN_BY_NAME + pinRoot)
static Napi::Value MapPinPath(const Napi::CallbackInfo& info) {
  int err;
  bpf_map* map = FindMap(info, &err);
  if (!map) return err ? Errno(info.Env(), err) : info.Env().Undefined();
  const char* p = bpf_map__pin_path(map);
  if (!p) return info.Env().Null();
  return Napi::String::New(info.Env(), p);
}

void InitObject(Napi::Env env, Napi::Object exports) {
  exports.Set("objectOpen", Napi::Function::New(env, ObjectOpen));
  exports.Set("objectLoad", Napi::Function::New(env, ObjectLoad));
  exports.Set("objectClose", Napi::Function::New(env, ObjectClose));
  exports.Set("objectPrograms", Napi::Function::New(env, ObjectPrograms));
  exports.Set("objectMaps", Napi::Function::New(env, ObjectMaps));
  exports.Set("objectSetGlobal", Napi::Function::New(env, ObjectSetGlobal));
  exports.Set("programFd", Napi::Function::New(env, ProgramFd));
  exports.Set("programSetAutoload", Napi::Function::New(env, ProgramSetAutoload));
  exports.Set("programSetType", Napi::Function::New(env, ProgramSetType));
  exports.Set("programAttach", Napi::Function::New(env, ProgramAttach));
  exports.Set("programAttachLsm", Napi::Function::New(env, ProgramAttachLsm));
  exports.Set("programAttachCgroup", Napi::Function::New(env, ProgramAttachCgroup));
  exports.Set("mapFdByName", Napi::Function::New(env, MapFdByName));
  exports.Set("mapSetMaxEntries", Napi::Function::New(env, MapSetMaxEntries));
  exports.Set("mapPinPath", Napi::Function::New(env, MapPinPath));
}

}  // namespace lilith
