// Ring buffer consumer: a background thread waits on the ring's epoll fd and an
// eventfd (for a prompt close), consumes samples, and hands each one to JS
// through a thread-safe function. close() stops the thread, joins it and
// releases the thread-safe function, so nothing keeps the event loop alive.
#include "common.h"

#include <bpf/libbpf.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

namespace lilith {

class RingBuf;
using Sample = std::vector<uint8_t>;
// Samples consumed in one wake-up travel to JS together: one cross-thread call
// per batch instead of per sample.
using Batch = std::vector<Sample>;

static void CallJs(Napi::Env env, Napi::Function cb, RingBuf* ctx, Batch* data);
using Tsfn = Napi::TypedThreadSafeFunction<RingBuf, Batch, CallJs>;

// Queue bound between the poll thread and JS (in batches of at most kBatchMax):
// when JS falls behind, the poll thread blocks, the kernel ring fills and the
// BPF side sees drops (its bpf_ringbuf_reserve fails) instead of this process
// growing without bound.
static constexpr size_t kQueueMax = 64;
static constexpr size_t kBatchMax = 256;

class RingBuf : public Napi::ObjectWrap<RingBuf> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "RingBuf",
                       {InstanceMethod("close", &RingBuf::Close), InstanceMethod("ref", &RingBuf::RefLoop),
                        InstanceMethod("unref", &RingBuf::UnrefLoop)});
  }

  // new RingBuf(mapFd, onSample). Throws an Error with .errno on failure.
  RingBuf(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RingBuf>(info) {
    Napi::Env env = info.Env();
    int32_t fd;
    if (!CheckArgs(info, 2) || !ArgI32(info, 0, &fd)) return;
    if (!info[1].IsFunction()) {
      Napi::TypeError::New(env, "lilith_bpf: onSample must be a function").ThrowAsJavaScriptException();
      return;
    }
    LogBegin();
    errno = 0;
    rb_ = ring_buffer__new(fd, &RingBuf::OnSample, this, nullptr);
    if (!rb_) {
      ThrowErrno(env, errno ? errno : EINVAL, "ring_buffer__new");
      return;
    }
    wake_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (wake_ < 0 || ep_ < 0) {
      int e = errno;
      Cleanup();
      ThrowErrno(env, e, "eventfd/epoll");
      return;
    }
    struct epoll_event ev = {};
    ev.events = EPOLLIN;
    ev.data.u32 = 0;
    epoll_ctl(ep_, EPOLL_CTL_ADD, ring_buffer__epoll_fd(rb_), &ev);
    ev.data.u32 = 1;
    epoll_ctl(ep_, EPOLL_CTL_ADD, wake_, &ev);
    tsfn_ = Tsfn::New(env, info[1].As<Napi::Function>(), "lilith_bpf.ringbuf", kQueueMax, 1, this);
    has_tsfn_ = true;
    // Held strongly while open: a consumer nobody references must not be
    // collected (and silently stop) while the thread runs; close() releases it.
    Ref();
    pinned_ = true;
    thread_ = std::thread([this] { Run(); });
  }

  ~RingBuf() override {
    // Only reached without close() at environment teardown: unblock and stop the thread.
    if (has_tsfn_) tsfn_.Abort();
    Stop();
    Cleanup();
  }

  bool closed() const { return stop_.load(); }

 private:
  static void ThrowErrno(Napi::Env env, int err, const char* op) {
    Napi::Error e = Napi::Error::New(env, std::string(op) + " failed: " + strerror(err));
    e.Set("errno", Napi::Number::New(env, err));
    e.ThrowAsJavaScriptException();
  }

  static int OnSample(void* ctx, void* data, size_t size) {
    RingBuf* self = static_cast<RingBuf*>(ctx);
    if (self->stop_.load()) return -1;  // stop consuming; the ring keeps the rest
    self->batch_.emplace_back(static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
    if (self->batch_.size() >= kBatchMax && !self->Flush()) return -1;
    return 0;
  }

  // Hands the current batch to JS; false when the function is closing.
  bool Flush() {
    if (batch_.empty()) return true;
    Batch* b = new Batch(std::move(batch_));
    batch_.clear();
    if (tsfn_.BlockingCall(b) != napi_ok) {
      delete b;
      return false;
    }
    return true;
  }

  void Run() {
    struct epoll_event evs[2];
    while (!stop_.load()) {
      int n = epoll_wait(ep_, evs, 2, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (stop_.load()) break;
      ring_buffer__consume(rb_);
      if (!Flush()) break;
    }
    batch_.clear();
  }

  void Stop() {
    if (thread_.joinable()) {
      stop_.store(true);
      uint64_t one = 1;
      if (write(wake_, &one, sizeof one) < 0) { /* the thread also checks stop_ */ }
      thread_.join();
    }
    stop_.store(true);
  }

  void Cleanup() {
    if (rb_) ring_buffer__free(rb_);
    rb_ = nullptr;
    if (wake_ >= 0) close(wake_);
    if (ep_ >= 0) close(ep_);
    wake_ = ep_ = -1;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (has_tsfn_) {
      stop_.store(true);
      // Abort first: a poll thread blocked on a full queue returns napi_closing.
      tsfn_.Abort();
      has_tsfn_ = false;
    }
    Stop();
    Cleanup();
    if (pinned_) {
      pinned_ = false;
      Unref();
    }
    return info.Env().Undefined();
  }

  Napi::Value RefLoop(const Napi::CallbackInfo& info) {
    if (has_tsfn_) tsfn_.Ref(info.Env());
    return info.Env().Undefined();
  }

  Napi::Value UnrefLoop(const Napi::CallbackInfo& info) {
    if (has_tsfn_) tsfn_.Unref(info.Env());
    return info.Env().Undefined();
  }

  ring_buffer* rb_ = nullptr;
  int wake_ = -1;
  int ep_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  Tsfn tsfn_;
  bool has_tsfn_ = false;
  bool pinned_ = false;
  Batch batch_;  // poll thread only
};

static void CallJs(Napi::Env env, Napi::Function cb, RingBuf* ctx, Batch* data) {
  // env is null when the function is being torn down: only free the batch.
  if (env != nullptr && cb != nullptr) {
    for (const Sample& s : *data) {
      if (ctx->closed()) break;  // close() from a handler drops the rest
      Napi::Buffer<uint8_t> buf = Napi::Buffer<uint8_t>::Copy(env, s.data(), s.size());
      cb.Call({buf});
      if (env.IsExceptionPending()) break;  // loader.ts catches handler errors; keep the invariant anyway
    }
  }
  delete data;
}

void InitRingBuf(Napi::Env env, Napi::Object exports) { exports.Set("RingBuf", RingBuf::Define(env)); }

}  // namespace lilith
