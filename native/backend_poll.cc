// poll(2): Python's asyncore.poll2(), but with a persistent pollfd array instead of a new
// select.poll() object per iteration. The array stays dense: removing an fd moves the last
// entry into its slot (libevent's idxplus1), so add and remove are O(1).
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "backend.h"

namespace aco {
namespace {

class PollBackend final : public Backend {
 public:
  const char* Name() const override { return "poll"; }

  int Set(int fd, uint32_t /*old_mask*/, uint32_t new_mask) override {
    if (fd < 0) return -EBADF;
    if (static_cast<size_t>(fd) >= slot_of_fd_.size()) {
      // Unknown so far: nothing to remove, and a table grown for an fd that is not open
      // would cost memory by the fd's value.
      if (new_mask == 0) return 0;
      if (!FdIsOpen(fd)) return -EBADF;
      slot_of_fd_.resize(std::max<size_t>(static_cast<size_t>(fd) + 1, slot_of_fd_.size() * 2),
                         kAbsent);
    }
    int slot = slot_of_fd_[fd];
    if (new_mask == 0) {
      if (slot == kAbsent) return 0;
      pollfd last = fds_.back();
      fds_[slot] = last;
      slot_of_fd_[last.fd] = slot;
      fds_.pop_back();
      slot_of_fd_[fd] = kAbsent;
      return 0;
    }
    if (slot == kAbsent) {
      if (!FdIsOpen(fd)) return -EBADF;
      slot_of_fd_[fd] = static_cast<int>(fds_.size());
      fds_.push_back(pollfd{fd, static_cast<short>(new_mask), 0});
    } else {
      fds_[slot].events = static_cast<short>(new_mask);
    }
    return 0;
  }

  int Wait(int64_t timeout_ms, ReadyEvent* out, int capacity) override {
    int ready = WaitRetryingEintr(timeout_ms, [this](int64_t remaining_ms) {
      int wait_ms = static_cast<int>(std::min<int64_t>(remaining_ms, INT32_MAX));
      return ::poll(fds_.data(), fds_.size(), remaining_ms < 0 ? -1 : wait_ms);
    });
    if (ready < 0) return ready;
    int count = 0;
    for (size_t i = 0; i < fds_.size() && count < ready && count < capacity; i++) {
      if (fds_[i].revents != 0) out[count++] = ReadyEvent{fds_[i].fd, fds_[i].revents};
    }
    return count;
  }

  int WatchedCount() const override { return static_cast<int>(fds_.size()); }

 private:
  static constexpr int kAbsent = -1;
  std::vector<pollfd> fds_;
  std::vector<int> slot_of_fd_;  // fd -> index in fds_, or kAbsent
};

}  // namespace

std::unique_ptr<Backend> CreatePollBackend(int* error) {
  *error = 0;
  return std::make_unique<PollBackend>();
}

}  // namespace aco
