// BPF links: pin, unpin, open a pinned link, detach (really detaches, even
// when pinned), destroy (closes our fd; a pinned link stays attached).
#include "common.h"

#include <bpf/libbpf.h>

#include <unordered_map>

namespace lilith {

static std::unordered_map<uint32_t, bpf_link*> g_links;
static uint32_t g_next_link = 1;

uint32_t AddLink(bpf_link* link) {
  uint32_t h = g_next_link++;
  g_links[h] = link;
  return h;
}

static bpf_link* GetLink(const Napi::CallbackInfo& info, uint32_t* handle) {
  if (!CheckArgs(info, 1) || !ArgU32(info, 0, handle)) return nullptr;
  auto it = g_links.find(*handle);
  return it == g_links.end() ? nullptr : it->second;
}

#define LINK_OR_RETURN(link, h)                                      \
  uint32_t h;                                                        \
  bpf_link* link = GetLink(info, &h);                                \
  if (info.Env().IsExceptionPending()) return info.Env().Undefined(); \
  if (!link) return Errno(info.Env(), EBADF);

// linkOpenPinned(path) -> handle | -errno
static Napi::Value LinkOpenPinned(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (!CheckArgs(info, 1) || !ArgStr(info, 0, &path)) return env.Undefined();
  LogBegin();
  errno = 0;
  bpf_link* link = bpf_link__open(path.c_str());
  if (!link) return Errno(env, errno ? errno : ENOENT);
  return Napi::Number::New(env, AddLink(link));
}

// linkFd(handle) -> fd | -errno
static Napi::Value LinkFd(const Napi::CallbackInfo& info) {
  LINK_OR_RETURN(link, h);
  return Napi::Number::New(info.Env(), bpf_link__fd(link));
}

// linkPinPath(handle) -> path | null
static Napi::Value LinkPinPath(const Napi::CallbackInfo& info) {
  LINK_OR_RETURN(link, h);
  const char* p = bpf_link__pin_path(link);
  if (!p) return info.Env().Null();
  return Napi::String::New(info.Env(), p);
}

// linkPin(handle, path) -> 0 | -errno
static Napi::Value LinkPin(const Napi::CallbackInfo& info) {
  LINK_OR_RETURN(link, h);
  std::string path;
  if (!CheckArgs(info, 2) || !ArgStr(info, 1, &path)) return info.Env().Undefined();
  LogBegin();
  return Napi::Number::New(info.Env(), bpf_link__pin(link, path.c_str()));
}

// linkUnpin(handle) -> 0 | -errno
static Napi::Value LinkUnpin(const Napi::CallbackInfo& info) {
  LINK_OR_RETURN(link, h);
  LogBegin();
  return Napi::Number::New(info.Env(), bpf_link__unpin(link));
}

// linkDetach(handle) -> 0 | -errno. The fd stays open (destroy closes it).
static Napi::Value LinkDetach(const Napi::CallbackInfo& info) {
  LINK_OR_RETURN(link, h);
  LogBegin();
  return Napi::Number::New(info.Env(), bpf_link__detach(link));
}

// linkDestroy(handle) -> 0 | -errno. For fd-based links libbpf only closes
// the fd: the kernel detaches an unpinned link when its last reference goes,
// and a pinned one stays attached (the pin is a reference).
static Napi::Value LinkDestroy(const Napi::CallbackInfo& info) {
  LINK_OR_RETURN(link, h);
  g_links.erase(h);
  return Napi::Number::New(info.Env(), bpf_link__destroy(link));
}

void InitLink(Napi::Env env, Napi::Object exports) {
  exports.Set("linkOpenPinned", Napi::Function::New(env, LinkOpenPinned));
  exports.Set("linkFd", Napi::Function::New(env, LinkFd));
  exports.Set("linkPinPath", Napi::Function::New(env, LinkPinPath));
  exports.Set("linkPin", Napi::Function::New(env, LinkPin));
  exports.Set("linkUnpin", Napi::Function::New(env, LinkUnpin));
  exports.Set("linkDetach", Napi::Function::New(env, LinkDetach));
  exports.Set("linkDestroy", Napi::Function::New(env, LinkDestroy));
}

}  // namespace lilith
