// The interface every readiness backend implements: libevent's `struct eventop`, in C++.
//
// A backend is a persistent interest set plus one blocking call. The reactor tells it
// what changed for an fd (old mask -> new mask, so epoll can pick ADD/MOD/DEL without a
// lookup) and asks it to wait. Masks and results use poll(2)'s bits on every backend:
//   POLLIN  - the dispatcher is readable()      (select: the fd is in the read set)
//   POLLOUT - the dispatcher is writable()      (select: the write set)
//   POLLPRI - exceptional conditions / OOB data (select: the "except" set)
// and results may also carry POLLERR, POLLHUP and POLLNVAL.
//
// Adding a backend is one file: implement this class and list it in backend.cc.
#ifndef ASYNCORE_NATIVE_BACKEND_H_
#define ASYNCORE_NATIVE_BACKEND_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "platform.h"

namespace aco {

// One ready fd and what the kernel reported for it.
struct ReadyEvent {
  int32_t fd;
  int32_t events;
};

class Backend {
 public:
  virtual ~Backend() = default;
  Backend() = default;
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  virtual const char* Name() const = 0;

  // Watches fd for new_mask instead of old_mask; a mask of 0 means "not watched".
  // Returns 0 or -errno. -ERANGE means this backend cannot hold that fd at all.
  virtual int Set(int fd, uint32_t old_mask, uint32_t new_mask) = 0;

  // Waits up to timeout_ms (negative: forever, 0: just look) and writes at most
  // `capacity` ready fds to `out`. Returns how many it wrote, or -errno. A signal
  // (EINTR) is not an error: the wait resumes with the time that is left (PEP 475).
  virtual int Wait(int64_t timeout_ms, ReadyEvent* out, int capacity) = 0;

  // How many fds are watched now (for sizing result buffers).
  virtual int WatchedCount() const = 0;
};

// One entry of the table of compiled-in backends, best first (libevent's eventops[]).
struct BackendInfo {
  const char* name;
  // Returns nullptr and sets *error (-errno) when the kernel refuses (e.g. epoll_create1).
  std::unique_ptr<Backend> (*create)(int* error);
};

// The backends compiled in on this platform, most scalable first.
const std::vector<BackendInfo>& AvailableBackends();

// Creates the backend called `name` ("auto" picks the first available).
// Returns nullptr with *error = -ENOENT for an unknown or unavailable name.
std::unique_ptr<Backend> CreateBackend(const std::string& name, int* error);

// Now on the monotonic clock, in milliseconds (for waits that resume after EINTR).
int64_t MonotonicMs();

// Runs one blocking wait, wait(remaining_ms), again after each EINTR with the time that is
// left of timeout_ms (negative: forever), as PEP 475 asks. `wait` returns what the system
// call returned (-1 with errno set on failure); the result is that count or -errno.
int WaitRetryingEintr(int64_t timeout_ms, const std::function<int(int64_t)>& wait);

// Whether fd is an open file descriptor (fcntl F_GETFD). Backends check this before they
// grow a table by an fd's value, so a bogus fd number costs nothing.
bool FdIsOpen(int fd);

std::unique_ptr<Backend> CreateSelectBackend(int* error);
std::unique_ptr<Backend> CreatePollBackend(int* error);
#if defined(ACO_HAVE_EPOLL)
std::unique_ptr<Backend> CreateEpollBackend(int* error);
#endif

}  // namespace aco

#endif  // ASYNCORE_NATIVE_BACKEND_H_
