// libbpf prints warnings (including the verifier log of a rejected program)
// through a callback. We capture them instead of letting them reach stderr, so
// loader.ts can attach the text to the BpfError of the failing operation.
#include "common.h"

#include <bpf/libbpf.h>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace lilith {

// The verifier log of a large program can be megabytes; keep the tail, which
// holds the rejection reason.
static constexpr size_t kMaxLog = 1 << 20;
static std::mutex g_mu;
static std::string g_log;
static bool g_debug = false;

static int Print(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG && !g_debug) return 0;
  char buf[4096];
  va_list copy;
  va_copy(copy, args);
  int n = vsnprintf(buf, sizeof buf, fmt, copy);
  va_end(copy);
  std::string line;
  if (n >= (int)sizeof buf) {
    line.resize((size_t)n + 1);
    vsnprintf(&line[0], line.size(), fmt, args);
    line.resize((size_t)n);
  } else if (n > 0) {
    line.assign(buf, (size_t)n);
  }
  std::lock_guard<std::mutex> lock(g_mu);
  g_log += line;
  if (g_log.size() > kMaxLog) g_log.erase(0, g_log.size() - kMaxLog);
  return n;
}

void InstallLogger() {
  const char* d = getenv("LILITH_BPF_DEBUG");
  g_debug = d != nullptr && d[0] == '1';
  libbpf_set_print(Print);
}

void LogBegin() {
  std::lock_guard<std::mutex> lock(g_mu);
  g_log.clear();
}

std::string LogTake() {
  std::lock_guard<std::mutex> lock(g_mu);
  std::string out;
  out.swap(g_log);
  return out;
}

}  // namespace lilith
