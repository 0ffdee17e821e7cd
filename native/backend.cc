// The table of backends, best first, and the clock they share.
#include "backend.h"

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

}  // namespace aco
