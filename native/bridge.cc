// The thread bridge: loop() polls on a native thread while Node's event loop runs.
//
// The JS thread and the polling thread take turns over one Reactor, so neither ever
// touches it while the other does:
//
//   JS turn                              polling thread
//   -------                              --------------
//   setInterest(...) for what changed
//   resume(timeoutMs)  ───────────────▶  reactor.Poll(timeoutMs)
//                                        batch = ready fds, wait time
//   onBatch(count, waitMs, woken)  ◀───  tsfn.NonBlockingCall()   (one call per wait;
//     (ready fds in the ready array)                               the fds copied on the JS side)
//   dispatch handlers ...                (parked until the next resume)
//
// Interest that changes outside a handler (a timer calls send(), a dispatcher is created)
// cannot wait for the poll timeout: JS calls wake(), the wait ends at once with an empty
// batch, and the next JS turn applies the change. wake() writes an eventfd and is safe at
// any time.
//
// Lifetime: the thread only ever calls
// NonBlockingCall and stops on napi_closing; an environment cleanup hook, registered after
// the thread-safe function, wakes and joins the thread and then releases the function, so
// process.exit() and worker.terminate() find nothing running. State the thread touches
// lives in a LoopCore shared by the JS object and the thread-safe function, so whichever
// goes last frees it.
#include "bridge.h"

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "reactor.h"
#include "wrap_common.h"

namespace aco {
namespace {

// What the two threads share. Guarded by `mutex` except where noted.
struct LoopCore {
  enum class Turn { kJavaScript, kPolling, kStopped };

  std::unique_ptr<Reactor> reactor;  // the polling thread uses it only in kPolling
  // The JS array the batches are copied to (the ThreadLoop's), used on the JS thread only,
  // in the JS turn: then the ThreadLoop is alive, since its end sets kStopped for good.
  ReadyArray* ready = nullptr;
  std::mutex mutex;
  std::condition_variable turn_changed;
  Turn turn = Turn::kJavaScript;
  int64_t timeout_ms = -1;  // for the next wait
  // The last batch, read by the JS thread after the hand-over.
  int result = 0;  // ready count or -errno
  bool woken = false;
  double wait_ms = 0;
};

struct Context {
  std::shared_ptr<LoopCore> core;
};

void DeliverBatch(Napi::Env env, Napi::Function on_batch, Context* context, std::nullptr_t*);

using BatchFunction = Napi::TypedThreadSafeFunction<Context, std::nullptr_t, DeliverBatch>;

class ThreadLoop : public Napi::ObjectWrap<ThreadLoop> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(
        env, "ThreadLoop",
        {InstanceMethod<&ThreadLoop::SetInterest>("setInterest"),
         InstanceMethod<&ThreadLoop::SetReadyArray>("setReadyArray"),
         InstanceMethod<&ThreadLoop::Resume>("resume"), InstanceMethod<&ThreadLoop::Wake>("wake"),
         InstanceMethod<&ThreadLoop::Stop>("stop"), InstanceMethod<&ThreadLoop::Ref>("ref"),
         InstanceMethod<&ThreadLoop::Unref>("unref"),
         InstanceAccessor<&ThreadLoop::Backend>("backend")});
  }

  // new ThreadLoop(backendName, onBatch(result, waitMs, woken))
  // result is the ready count, the fds already in the ready array (setReadyArray), or -errno.
  // The thread starts parked; the first resume() starts the first wait.
  explicit ThreadLoop(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ThreadLoop>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) throw Napi::TypeError::New(env, "backend must be a string");
    if (!info[1].IsFunction()) throw Napi::TypeError::New(env, "onBatch must be a function");
    int error = 0;
    int wake_fd = -1;
    auto core = std::make_shared<LoopCore>();
    core->reactor = Reactor::Create(info[0].As<Napi::String>().Utf8Value(), &error);
    if (core->reactor == nullptr || (error = core->reactor->EnableWakeups(&wake_fd)) < 0) {
      throw ReactorCreationError(env, error, wake_fd);
    }
    core->ready = &ready_;
    core_ = core;
    auto* context = new Context{core};
    batches_ = BatchFunction::New(env, info[1].As<Napi::Function>(), "asyncore.loop", 0, 1, context,
                                  [](Napi::Env, void*, Context* ctx) { delete ctx; });
    // Registered after the thread-safe function: at teardown it runs first (hooks run in
    // reverse order), so the thread is joined before Node finalizes the function.
    cleanup_ = env.AddCleanupHook(OnTeardown, this);
    thread_ = std::thread(PollingThread, core, batches_);
  }

  ~ThreadLoop() override { Shutdown(); }

 private:
  static void PollingThread(std::shared_ptr<LoopCore> core, BatchFunction batches) {
    for (;;) {
      int64_t timeout_ms;
      {
        std::unique_lock<std::mutex> lock(core->mutex);
        core->turn_changed.wait(lock, [&] { return core->turn != LoopCore::Turn::kJavaScript; });
        if (core->turn == LoopCore::Turn::kStopped) return;
        timeout_ms = core->timeout_ms;
      }
      bool woken = false;
      int64_t started = MonotonicMs();
      int result = core->reactor->Poll(timeout_ms, &woken);
      double wait_ms = static_cast<double>(MonotonicMs() - started);
      {
        std::lock_guard<std::mutex> lock(core->mutex);
        if (core->turn == LoopCore::Turn::kStopped) return;
        core->result = result;
        core->woken = woken;
        core->wait_ms = wait_ms;
        core->turn = LoopCore::Turn::kJavaScript;
      }
      if (batches.NonBlockingCall(nullptr) != napi_ok) return;  // napi_closing: teardown
    }
  }

  static void OnTeardown(ThreadLoop* self) { self->Shutdown(/*from_cleanup_hook=*/true); }

  // Valid only in the JS turn; the polling thread is parked then.
  LoopCore* JsTurnCore(Napi::Env env) {
    if (core_ == nullptr) throw Napi::Error::New(env, "the loop is stopped");
    std::lock_guard<std::mutex> lock(core_->mutex);
    if (core_->turn != LoopCore::Turn::kJavaScript) {
      throw Napi::Error::New(env, "the polling thread is waiting: call wake() and retry");
    }
    return core_.get();
  }

  Napi::Value SetInterest(const Napi::CallbackInfo& info) {
    LoopCore* core = JsTurnCore(info.Env());
    int fd = info[0].As<Napi::Number>().Int32Value();
    auto mask = static_cast<uint32_t>(info[1].As<Napi::Number>().Int32Value());
    return Napi::Number::New(info.Env(), core->reactor->SetInterest(fd, mask));
  }

  // setReadyArray(out: Int32Array): where each batch's ready fds are written, as [fd, events]
  // pairs, before onBatch is called. Used by the JS thread only, like the array itself.
  Napi::Value SetReadyArray(const Napi::CallbackInfo& info) {
    ready_.Set(info);
    return info.Env().Undefined();
  }

  // resume(timeoutMs): ends the JS turn and starts the next wait.
  Napi::Value Resume(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    LoopCore* core = JsTurnCore(env);
    double timeout = info[0].As<Napi::Number>().DoubleValue();
    {
      std::lock_guard<std::mutex> lock(core->mutex);
      core->timeout_ms = timeout < 0 ? -1 : static_cast<int64_t>(timeout);
      core->turn = LoopCore::Turn::kPolling;
    }
    core->turn_changed.notify_one();
    return env.Undefined();
  }

  Napi::Value Wake(const Napi::CallbackInfo& info) {
    if (core_ != nullptr) core_->reactor->Wake();
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  Napi::Value Ref(const Napi::CallbackInfo& info) {
    if (core_ != nullptr) batches_.Ref(info.Env());
    return info.Env().Undefined();
  }

  Napi::Value Unref(const Napi::CallbackInfo& info) {
    if (core_ != nullptr) batches_.Unref(info.Env());
    return info.Env().Undefined();
  }

  Napi::Value Backend(const Napi::CallbackInfo& info) {
    if (core_ == nullptr) return info.Env().Null();
    return Napi::String::New(info.Env(), core_->reactor->BackendName());
  }

  // Stops and joins the thread, then releases the thread-safe function. Idempotent; runs
  // from stop(), the environment cleanup hook or the destructor, whichever comes first.
  // The hook must not remove itself: node-addon-api frees the hook's data after it runs,
  // and Remove() would free it a first time (a double free at every worker teardown).
  void Shutdown(bool from_cleanup_hook = false) {
    if (core_ == nullptr) return;
    {
      std::lock_guard<std::mutex> lock(core_->mutex);
      core_->turn = LoopCore::Turn::kStopped;
    }
    core_->turn_changed.notify_one();
    core_->reactor->Wake();
    if (thread_.joinable()) thread_.join();
    // Close the backend and wake-up fds now; the thread-safe function may keep the rest of
    // the LoopCore until its finalizer runs, a turn of Node's loop later.
    core_->reactor.reset();
    if (!from_cleanup_hook) cleanup_.Remove(Env());
    batches_.Release();
    core_.reset();
  }

  std::shared_ptr<LoopCore> core_;
  ReadyArray ready_;
  BatchFunction batches_;
  Napi::Env::CleanupHook<void (*)(ThreadLoop*), ThreadLoop> cleanup_;
  std::thread thread_;
};

// Runs on the JS thread after each wait: writes the ready fds to the ready array and calls
// onBatch(count or -errno, waitMs, woken), one crossing for the whole hand-over. During
// teardown env is null: nothing to free, since the batch itself lives in the LoopCore.
void DeliverBatch(Napi::Env env, Napi::Function on_batch, Context* context, std::nullptr_t*) {
  if (env == nullptr || on_batch.IsEmpty() || context == nullptr) return;
  LoopCore& core = *context->core;
  int result;
  bool woken;
  double wait_ms;
  {
    std::lock_guard<std::mutex> lock(core.mutex);
    if (core.turn != LoopCore::Turn::kJavaScript) return;  // stopped meanwhile
    result = core.result;
    woken = core.woken;
    wait_ms = core.wait_ms;
  }
  // The JS turn: the polling thread is parked and leaves the reactor alone.
  if (result > 0) {
    result = static_cast<int>(core.ready->Copy(core.reactor->ready(), static_cast<size_t>(result)));
  }
  on_batch.Call({Napi::Number::New(env, result), Napi::Number::New(env, wait_ms),
                 Napi::Boolean::New(env, woken)});
}

}  // namespace

void InitBridge(Napi::Env env, Napi::Object exports) {
  exports.Set("ThreadLoop", ThreadLoop::Define(env));
}

}  // namespace aco
