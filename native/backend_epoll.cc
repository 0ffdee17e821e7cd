// epoll(7), level-triggered so asyncore's semantics hold: an fd stays ready until its
// handler has drained it. The interest set lives in the kernel; only changes reach
// epoll_ctl(), and Set() is forgiving about the kernel's view (pyftpdlib's ioloop):
// an fd closed behind our back has already left the set, so ENOENT on MOD re-adds it and
// ENOENT/EBADF on DEL is success.
#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "backend.h"

namespace aco {
namespace {

// Results start with room for 64 fds and double, up to 4096, whenever a wait fills them.
constexpr size_t kInitialResults = 64;
constexpr size_t kMaxResults = 4096;

uint32_t ToEpoll(uint32_t mask) {
  uint32_t events = 0;
  if (mask & POLLIN) events |= EPOLLIN;
  if (mask & POLLOUT) events |= EPOLLOUT;
  if (mask & POLLPRI) events |= EPOLLPRI;
  return events;
}

int32_t FromEpoll(uint32_t events) {
  int32_t mask = 0;
  if (events & EPOLLIN) mask |= POLLIN;
  if (events & EPOLLOUT) mask |= POLLOUT;
  if (events & EPOLLPRI) mask |= POLLPRI;
  if (events & EPOLLERR) mask |= POLLERR;
  if (events & EPOLLHUP) mask |= POLLHUP;
  return mask;
}

class EpollBackend final : public Backend {
 public:
  explicit EpollBackend(int epfd) : epfd_(epfd), results_(kInitialResults) {}
  ~EpollBackend() override { ::close(epfd_); }

  const char* Name() const override { return "epoll"; }

  int Set(int fd, uint32_t old_mask, uint32_t new_mask) override {
    if (fd < 0) return -EBADF;
    epoll_event event{};
    event.events = ToEpoll(new_mask);
    event.data.fd = fd;
    if (new_mask == 0) {
      if (old_mask == 0) return 0;
      watched_--;
      if (::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, &event) < 0 && errno != ENOENT && errno != EBADF) {
        return -errno;
      }
      return 0;
    }
    int op = old_mask == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (::epoll_ctl(epfd_, op, fd, &event) < 0) {
      if (op == EPOLL_CTL_ADD && errno == EEXIST) {
        op = EPOLL_CTL_MOD;
      } else if (op == EPOLL_CTL_MOD && errno == ENOENT) {
        op = EPOLL_CTL_ADD;
      } else {
        return -errno;
      }
      if (::epoll_ctl(epfd_, op, fd, &event) < 0) return -errno;
    }
    if (old_mask == 0) watched_++;
    return 0;
  }

  int Wait(int64_t timeout_ms, ReadyEvent* out, int capacity) override {
    int room = static_cast<int>(std::min(results_.size(), static_cast<size_t>(capacity)));
    int ready = WaitRetryingEintr(timeout_ms, [this, room](int64_t remaining_ms) {
      int wait_ms = static_cast<int>(std::min<int64_t>(remaining_ms, INT32_MAX));
      return ::epoll_wait(epfd_, results_.data(), std::max(room, 1),
                          remaining_ms < 0 ? -1 : wait_ms);
    });
    if (ready < 0) return ready;
    ready = std::min(ready, capacity);
    for (int i = 0; i < ready; i++) {
      out[i] = ReadyEvent{results_[i].data.fd, FromEpoll(results_[i].events)};
    }
    if (static_cast<size_t>(ready) == results_.size() && results_.size() < kMaxResults) {
      results_.resize(results_.size() * 2);
    }
    return ready;
  }

  int WatchedCount() const override { return watched_; }

 private:
  int epfd_;
  int watched_ = 0;
  std::vector<epoll_event> results_;
};

}  // namespace

std::unique_ptr<Backend> CreateEpollBackend(int* error) {
  int epfd = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) {
    *error = -errno;
    return nullptr;
  }
  *error = 0;
  return std::make_unique<EpollBackend>(epfd);
}

}  // namespace aco
