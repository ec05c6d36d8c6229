// Entry point: installs the libbpf logger and registers every part.
#include "common.h"

namespace lilith {

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InstallLogger();
  InitObject(env, exports);
  InitLink(env, exports);
  InitMap(env, exports);
  InitRingBuf(env, exports);
  InitSys(env, exports);
  return exports;
}

}  // namespace lilith

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return lilith::Init(env, exports); }

NODE_API_MODULE(lilith_bpf, InitModule)
