// select(2): Python's asyncore.poll(). Three persistent fd_sets, copied before each call
// because select() overwrites its arguments (libevent's readset_in / readset_out).
//
// An fd_set holds fds below FD_SETSIZE (1024) only; FD_SET beyond it writes out of bounds
// (a fortified glibc aborts). Set() refuses such an fd with -ERANGE before touching a set.
#include <poll.h>
#include <sys/select.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "backend.h"

namespace aco {
namespace {

class SelectBackend final : public Backend {
 public:
  SelectBackend() {
    FD_ZERO(&read_in_);
    FD_ZERO(&write_in_);
    FD_ZERO(&except_in_);
  }

  const char* Name() const override { return "select"; }

  int Set(int fd, uint32_t old_mask, uint32_t new_mask) override {
    if (fd < 0) return -EBADF;
    if (fd >= FD_SETSIZE) return -ERANGE;
    Update(&read_in_, fd, (new_mask & POLLIN) != 0);
    Update(&write_in_, fd, (new_mask & POLLOUT) != 0);
    Update(&except_in_, fd, (new_mask & POLLPRI) != 0);
    if (old_mask == 0 && new_mask != 0) {
      watched_++;
      max_fd_ = std::max(max_fd_, fd);
    } else if (old_mask != 0 && new_mask == 0) {
      watched_--;
      if (fd == max_fd_) ShrinkMaxFd();
    }
    return 0;
  }

  int Wait(int64_t timeout_ms, ReadyEvent* out, int capacity) override {
    int ready = WaitRetryingEintr(timeout_ms, [this](int64_t remaining_ms) {
      std::memcpy(&read_out_, &read_in_, sizeof(fd_set));
      std::memcpy(&write_out_, &write_in_, sizeof(fd_set));
      std::memcpy(&except_out_, &except_in_, sizeof(fd_set));
      timeval tv{};
      timeval* tvp = nullptr;
      if (remaining_ms >= 0) {
        tv.tv_sec = static_cast<time_t>(remaining_ms / 1000);
        tv.tv_usec = static_cast<suseconds_t>((remaining_ms % 1000) * 1000);
        tvp = &tv;
      }
      return ::select(max_fd_ + 1, &read_out_, &write_out_, &except_out_, tvp);
    });
    if (ready == -EBADF) return ReportClosedFds(out, capacity);
    if (ready < 0) return ready;
    int count = 0;
    for (int fd = 0; fd <= max_fd_ && count < capacity && ready > 0; fd++) {
      int32_t events = 0;
      if (FD_ISSET(fd, &read_out_)) events |= POLLIN;
      if (FD_ISSET(fd, &write_out_)) events |= POLLOUT;
      if (FD_ISSET(fd, &except_out_)) events |= POLLPRI;
      if (events != 0) {
        out[count++] = ReadyEvent{fd, events};
        ready -= __builtin_popcount(static_cast<unsigned>(events));
      }
    }
    return count;
  }

  int WatchedCount() const override { return watched_; }

 private:
  // select() fails as a whole when one watched fd is closed: find those fds and report each
  // as POLLNVAL (what poll() says of them), so the rest of the set is still served. Returns
  // -EBADF when every watched fd is open again (the closed one was reused meanwhile).
  int ReportClosedFds(ReadyEvent* out, int capacity) const {
    int count = 0;
    for (int fd = 0; fd <= max_fd_ && count < capacity; fd++) {
      bool watched =
          FD_ISSET(fd, &read_in_) || FD_ISSET(fd, &write_in_) || FD_ISSET(fd, &except_in_);
      if (watched && !FdIsOpen(fd)) out[count++] = ReadyEvent{fd, POLLNVAL};
    }
    return count > 0 ? count : -EBADF;
  }

  static void Update(fd_set* set, int fd, bool on) {
    if (on) {
      FD_SET(fd, set);
    } else {
      FD_CLR(fd, set);
    }
  }

  void ShrinkMaxFd() {
    while (max_fd_ >= 0 && !FD_ISSET(max_fd_, &read_in_) && !FD_ISSET(max_fd_, &write_in_) &&
           !FD_ISSET(max_fd_, &except_in_)) {
      max_fd_--;
    }
  }

  fd_set read_in_, write_in_, except_in_;
  fd_set read_out_, write_out_, except_out_;
  int max_fd_ = -1;
  int watched_ = 0;
};

}  // namespace

std::unique_ptr<Backend> CreateSelectBackend(int* error) {
  *error = 0;
  return std::make_unique<SelectBackend>();
}

}  // namespace aco
