// The reactor behind loopSync(): a Reactor that JavaScript polls on its own thread.
//
// A worker thread blocked in poll() must still end promptly when worker.terminate() (or
// process.exit() of the main thread, which terminates every worker) asks it to. Node's
// Worker::Exit runs on the other thread and calls Environment::ExitEnv(): that marks the
// environment as stopping (from then on a Node-API call into JavaScript fails), asks V8 to
// terminate the isolate's JavaScript, and posts a task with uv_async_send() to the worker's
// own libuv loop. Nothing of that interrupts a poll(2) in our reactor, so the worker used to
// sit out the whole loopSync() timeout, or forever with `timeout: Infinity`.
//
// What does change is the worker's libuv loop: its backend fd (the epoll fd on Linux) turns
// readable at the uv_async_send(). So in a worker, the reactor also watches that fd:
//   - when it fires and the environment is stopping, poll() returns at once with no events,
//     and the terminated JavaScript never runs another handler;
//   - when it fires for anything else (the libuv loop has I/O that nobody services while
//     loopSync() holds the thread: a message, a timer's fd, a Node socket), the fd stays
//     readable, so it is left out of the wait for a short back-off instead of waking every
//     poll at once. Termination is then noticed when the back-off ends: within kBackOffMs.
// The wait itself keeps its meaning: poll() returns when a watched fd is ready or the
// caller's timeout has passed, however many times this fd woke it meanwhile.
// On the main thread (nobody can terminate it from outside) nothing extra is watched.
#include "reactor_wrap.h"

#include <poll.h>

#include <algorithm>
#include <cstdint>
#include <memory>

#include "reactor.h"
#include "wrap_common.h"

// Two functions of libuv's stable 1.x ABI, which every Node binary exports. Declared here
// because node-api-headers (the cmake-js build) has no uv.h; node_api.h declares uv_loop_s.
extern "C" {
int uv_backend_fd(const struct uv_loop_s* loop);
struct uv_loop_s* uv_default_loop(void);
}

namespace aco {
namespace {

// How long the libuv loop's fd stays unwatched after it fired with no termination.
constexpr int64_t kBackOffMs = 100;

// The backend fd of this environment's libuv loop when it runs on a worker thread, else -1.
int WorkerLoopFd(napi_env env) {
  struct uv_loop_s* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) return -1;
  if (loop == uv_default_loop()) return -1;  // the main thread
  return uv_backend_fd(loop);
}

// Whether Node is tearing this environment down (worker.terminate(), process.exit()).
// Setting a property runs Node-API's check that JavaScript may still be called, which
// fails once the environment is stopping; nothing else here can fail on a fresh object.
bool EnvironmentStopping(napi_env env) {
  napi_value probe = nullptr;
  napi_value value = nullptr;
  if (napi_create_object(env, &probe) != napi_ok || napi_get_null(env, &value) != napi_ok) {
    return true;
  }
  return napi_set_named_property(env, probe, "probe", value) != napi_ok;
}

class ReactorWrap : public Napi::ObjectWrap<ReactorWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(
        env, "Reactor",
        {InstanceMethod<&ReactorWrap::SetInterest>("setInterest"),
         InstanceMethod<&ReactorWrap::SetReadyArray>("setReadyArray"),
         InstanceMethod<&ReactorWrap::Poll>("poll"), InstanceMethod<&ReactorWrap::Close>("close"),
         InstanceAccessor<&ReactorWrap::Backend>("backend")});
  }

  // new Reactor(backendName); throws an Error with `errno` when it cannot be created.
  explicit ReactorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ReactorWrap>(info) {
    if (!info[0].IsString()) throw Napi::TypeError::New(info.Env(), "backend must be a string");
    int error = 0;
    reactor_ = Reactor::Create(info[0].As<Napi::String>().Utf8Value(), &error);
    if (reactor_ == nullptr) throw ReactorCreationError(info.Env(), error);
    // Without the watch (select cannot hold the fd, say) a terminated worker waits out its
    // timeout, as it would without this file.
    int loop_fd = WorkerLoopFd(info.Env());
    if (loop_fd >= 0 && reactor_->SetInterest(loop_fd, POLLIN) == 0) loop_fd_ = loop_fd;
  }

 private:
  Reactor* Get(Napi::Env env) {
    if (reactor_ == nullptr) throw Napi::Error::New(env, "the reactor is closed");
    return reactor_.get();
  }

  // setInterest(fd, mask) -> 0 or -errno (-ERANGE: the backend cannot hold fd)
  Napi::Value SetInterest(const Napi::CallbackInfo& info) {
    int fd = IntArg(info, 0, "fd");
    auto mask = static_cast<uint32_t>(IntArg(info, 1, "mask"));
    return Napi::Number::New(info.Env(), Get(info.Env())->SetInterest(fd, mask));
  }

  // setReadyArray(out: Int32Array): where poll() writes the ready fds from now on, as
  // [fd, events] pairs; it must hold two entries per watched fd.
  Napi::Value SetReadyArray(const Napi::CallbackInfo& info) {
    ready_.Set(info);
    return info.Env().Undefined();
  }

  // poll(timeoutMs) -> ready count or -errno; the ready fds are in the ready array.
  Napi::Value Poll(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Reactor* reactor = Get(env);
    if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "timeout must be a number");
    double timeout = info[0].As<Napi::Number>().DoubleValue();
    int64_t timeout_ms = timeout < 0 ? -1 : static_cast<int64_t>(timeout);
    if (loop_fd_ < 0) {
      bool woken = false;
      int count = reactor->Poll(timeout_ms, &woken);
      if (count < 0) return Napi::Number::New(env, count);
      return Napi::Number::New(env, static_cast<double>(ready_.Copy(reactor->ready(), count)));
    }
    int64_t result = PollInWorker(env, reactor, timeout_ms);
    return Napi::Number::New(env, static_cast<double>(result));
  }

  // Poll() on a worker thread: the same wait, also watching the libuv loop's fd (see the
  // top of this file). Returns the ready count or -errno.
  int64_t PollInWorker(napi_env env, Reactor* reactor, int64_t timeout_ms) {
    int64_t now = MonotonicMs();
    const int64_t deadline = timeout_ms < 0 ? -1 : now + timeout_ms;
    for (;;) {
      if (backed_off_until_ >= 0 && now >= backed_off_until_) {
        // Should the backend refuse the fd now (ENOMEM), it is tried again a back-off later.
        backed_off_until_ = reactor->SetInterest(loop_fd_, POLLIN) == 0 ? -1 : now + kBackOffMs;
      }
      int64_t wait = deadline < 0 ? -1 : std::max<int64_t>(0, deadline - now);
      bool cut_short = false;  // by the back-off, not by the caller's timeout
      if (backed_off_until_ >= 0 && (wait < 0 || backed_off_until_ - now < wait)) {
        wait = backed_off_until_ - now;
        cut_short = true;
      }
      bool woken = false;
      int count = reactor->Poll(wait, &woken);
      if (count < 0) return count;
      bool loop_fired = false;
      size_t written = ready_.Copy(reactor->ready(), count, loop_fd_, &loop_fired);
      now = MonotonicMs();
      if (loop_fired) {
        BackOff(reactor, now);
        // Back off here too: should V8 not end the JavaScript after all, the next poll()
        // waits normally instead of returning at once, again and again.
        if (EnvironmentStopping(env)) return 0;
      }
      if (written > 0) return static_cast<int64_t>(written);
      if (!loop_fired && !cut_short) return 0;  // the caller's timeout
      if (deadline >= 0 && now >= deadline) return 0;
    }
  }

  // Stops watching the loop's fd for kBackOffMs. Removing an fd from the interest set does
  // not fail on a live fd, so loop_fd_ stays what the results are filtered by.
  void BackOff(Reactor* reactor, int64_t now) {
    reactor->SetInterest(loop_fd_, 0);
    backed_off_until_ = now + kBackOffMs;
  }

  // Frees the backend (and its epoll fd) now rather than at garbage collection.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    reactor_.reset();
    return info.Env().Undefined();
  }

  Napi::Value Backend(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), Get(info.Env())->BackendName());
  }

  std::unique_ptr<Reactor> reactor_;
  ReadyArray ready_;
  // The worker's libuv loop fd, watched but never reported to JavaScript (-1: main thread,
  // or the backend could not hold it).
  int loop_fd_ = -1;
  // While >= 0: the loop fd is not watched until this time (MonotonicMs).
  int64_t backed_off_until_ = -1;
};

}  // namespace

void InitReactorWrap(Napi::Env env, Napi::Object exports) {
  exports.Set("Reactor", ReactorWrap::Define(env));
}

}  // namespace aco
