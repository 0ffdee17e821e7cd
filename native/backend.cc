// The table of backends, best first, and the clock they share.
#include "backend.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <ctime>

namespace aco {

const std::vector<BackendInfo>& AvailableBackends() {
  static const std::vector<BackendInfo> kBackends = {
#if defined(ACO_HAVE_EPOLL)
    {"epoll", CreateEpollBackend},
#endif
    {"poll", CreatePollBackend},
    {"select", CreateSelectBackend},
  };
  return kBackends;
}

std::unique_ptr<Backend> CreateBackend(const std::string& name, int* error) {
  for (const BackendInfo& info : AvailableBackends()) {
    if (name == "auto" || name == info.name) return info.create(error);
  }
  *error = -ENOENT;
  return nullptr;
}

int64_t MonotonicMs() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1000000;
}

int WaitRetryingEintr(int64_t timeout_ms, const std::function<int(int64_t)>& wait) {
  int64_t deadline = timeout_ms > 0 ? MonotonicMs() + timeout_ms : 0;
  for (;;) {
    int ready = wait(timeout_ms);
    if (ready >= 0) return ready;
    if (errno != EINTR) return -errno;
    if (timeout_ms > 0) timeout_ms = std::max<int64_t>(0, deadline - MonotonicMs());
  }
}

bool FdIsOpen(int fd) { return fd >= 0 && ::fcntl(fd, F_GETFD) >= 0; }

}  // namespace aco
