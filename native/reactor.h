// The reactor: one backend plus the bookkeeping around it. It remembers what the kernel is
// watching for every fd, so a caller states the interest it wants and only real changes
// become syscalls, and it owns the wake-up fd that lets another thread interrupt a wait.
//
// The same object serves loopSync (JS calls Poll on its own thread) and loop() (the bridge
// calls Poll on a native thread, between JS turns). Nothing here knows N-API.
#ifndef ASYNCORE_NATIVE_REACTOR_H_
#define ASYNCORE_NATIVE_REACTOR_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend.h"

namespace aco {

// The bytes queued for reading on fd (ioctl FIONREAD: TCP, UNIX sockets, pipes), or -errno.
// The loop asks it only on hang-ups, to tell a reader that is draining from one that is not.
int BytesReadable(int fd);

class Reactor {
 public:
  // Creates a reactor on the backend called `name` ("auto" for the best one).
  // Returns nullptr with *error = -errno (-ENOENT: no such backend here).
  static std::unique_ptr<Reactor> Create(const std::string& name, int* error);
  ~Reactor();
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  const char* BackendName() const { return backend_->Name(); }

  // Watches fd for `mask` (POLLIN | POLLOUT | POLLPRI; 0 stops watching). A mask equal
  // to the current one costs nothing. Returns 0 or -errno (-ERANGE: the backend cannot
  // hold this fd, as select cannot hold fd >= FD_SETSIZE).
  int SetInterest(int fd, uint32_t mask);
  uint32_t InterestOf(int fd) const;

  // How many fds are watched, the wake-up fd excluded. A result buffer this large never
  // drops an event.
  int WatchedCount() const;

  // One wait: up to timeout_ms (negative: forever). Returns how many fds are ready, or
  // -errno; they are ready()[0 .. count). Every watched fd fits, so none is dropped.
  // A wake-up ends the wait early and sets *woken; it is consumed here, never reported.
  int Poll(int64_t timeout_ms, bool* woken);
  const std::vector<ReadyEvent>& ready() const { return ready_; }

  // Creates the wake-up fd (an eventfd, or a pipe where eventfd is missing: WakeupOpen) and
  // watches it. Needed only when another thread will call Wake(). Returns 0 or -errno; *fd
  // is the fd it tried to watch (for messages:
  // select refuses one >= FD_SETSIZE with -ERANGE).
  int EnableWakeups(int* fd);

  // Thread-safe and async-signal-safe: makes the current or next Poll return at once.
  // Many calls before the wait notices cost one write (libuv's uv_async_send).
  void Wake();

 private:
  explicit Reactor(std::unique_ptr<Backend> backend);
  void DrainWakeups();

  std::unique_ptr<Backend> backend_;
  std::vector<uint8_t> interest_;  // fd -> mask the backend holds now
  std::vector<ReadyEvent> ready_;  // the last Poll's results
  int wake_fd_ = -1;               // watched: the eventfd, or the read end of the pipe
  int wake_write_fd_ = -1;         // written by Wake(): the same eventfd, or the pipe's write end
  std::atomic<bool> wake_pending_{false};
};

}  // namespace aco

#endif  // ASYNCORE_NATIVE_REACTOR_H_
