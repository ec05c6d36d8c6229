// Shared helpers for the addon. Conventions (see docs/bpf-addon.md):
//  - every call that can fail returns a Number; a negative value is -errno;
//  - objects and links are referred to by small integer handles owned here,
//    so a double close is a clean -EBADF instead of a use-after-free;
//  - argument type errors (a programming error in loader.ts) throw TypeError.
#pragma once
#include <napi.h>
#include <cerrno>
#include <cstdint>
#include <string>

struct bpf_object;
struct bpf_link;

namespace lilith {

// Handle tables (object.cc, link.cc). Lookups return nullptr for unknown handles.
bpf_object* GetObject(uint32_t handle);
uint32_t AddLink(bpf_link* link);

// libbpf output captured between LogBegin() and LogTake() (log.cc).
void InstallLogger();
void LogBegin();
std::string LogTake();

inline Napi::Value Errno(Napi::Env env, int err) {
  // libbpf returns -errno; plain syscalls leave errno set and return -1.
  if (err > 0) err = -err;
  if (err == 0) err = -EINVAL;
  return Napi::Number::New(env, err);
}

inline bool CheckArgs(const Napi::CallbackInfo& info, size_t n) {
  if (info.Length() < n) {
    Napi::TypeError::New(info.Env(), "lilith_bpf: missing arguments").ThrowAsJavaScriptException();
    return false;
  }
  return true;
}

inline bool ArgU32(const Napi::CallbackInfo& info, size_t i, uint32_t* out) {
  if (!info[i].IsNumber()) {
    Napi::TypeError::New(info.Env(), "lilith_bpf: argument " + std::to_string(i) + " must be a number").ThrowAsJavaScriptException();
    return false;
  }
  *out = info[i].As<Napi::Number>().Uint32Value();
  return true;
}

inline bool ArgI32(const Napi::CallbackInfo& info, size_t i, int32_t* out) {
  if (!info[i].IsNumber()) {
    Napi::TypeError::New(info.Env(), "lilith_bpf: argument " + std::to_string(i) + " must be a number").ThrowAsJavaScriptException();
    return false;
  }
  *out = info[i].As<Napi::Number>().Int32Value();
  return true;
}

inline bool ArgStr(const Napi::CallbackInfo& info, size_t i, std::string* out) {
  if (!info[i].IsString()) {
    Napi::TypeError::New(info.Env(), "lilith_bpf: argument " + std::to_string(i) + " must be a string").ThrowAsJavaScriptException();
    return false;
  }
  *out = info[i].As<Napi::String>().Utf8Value();
  return true;
}

inline bool ArgBuf(const Napi::CallbackInfo& info, size_t i, Napi::Buffer<uint8_t>* out) {
  if (!info[i].IsBuffer()) {
    Napi::TypeError::New(info.Env(), "lilith_bpf: argument " + std::to_string(i) + " must be a Buffer").ThrowAsJavaScriptException();
    return false;
  }
  *out = info[i].As<Napi::Buffer<uint8_t>>();
  return true;
}

// Module parts register their functions on the exports object.
void InitObject(Napi::Env env, Napi::Object exports);
void InitLink(Napi::Env env, Napi::Object exports);
void InitMap(Napi::Env env, Napi::Object exports);
void InitRingBuf(Napi::Env env, Napi::Object exports);
void InitSys(Napi::Env env, Napi::Object exports);

}  // namespace lilith
