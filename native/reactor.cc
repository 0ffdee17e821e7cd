#include "reactor.h"

#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>

#include "socket.h"

namespace aco {

std::unique_ptr<Reactor> Reactor::Create(const std::string& name, int* error) {
  std::unique_ptr<Backend> backend = CreateBackend(name, error);
  if (backend == nullptr) return nullptr;
  return std::unique_ptr<Reactor>(new Reactor(std::move(backend)));
}

Reactor::Reactor(std::unique_ptr<Backend> backend) : backend_(std::move(backend)) {}

Reactor::~Reactor() {
  if (wake_write_fd_ >= 0 && wake_write_fd_ != wake_fd_) ::close(wake_write_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

int Reactor::SetInterest(int fd, uint32_t mask) {
  if (fd < 0) return -EBADF;
  uint32_t old_mask = InterestOf(fd);
  if (old_mask == mask) return 0;
  // A new fd must be open before any table grows by its value (a map key of 2^31-1).
  if (old_mask == 0 && !FdIsOpen(fd)) return -EBADF;
  int status = backend_->Set(fd, old_mask, mask);
  if (status == -EBADF && old_mask != 0) {
    // Closed behind our back: the kernel watches it no more, and neither do we.
    backend_->Set(fd, old_mask, 0);
    interest_[fd] = 0;
  }
  if (status < 0) return status;
  if (static_cast<size_t>(fd) >= interest_.size()) {
    size_t grown = interest_.size() < 64 ? 64 : interest_.size();
    while (grown <= static_cast<size_t>(fd)) grown *= 2;
    interest_.resize(grown, 0);
  }
  interest_[fd] = static_cast<uint8_t>(mask);
  return 0;
}

uint32_t Reactor::InterestOf(int fd) const {
  return fd >= 0 && static_cast<size_t>(fd) < interest_.size() ? interest_[fd] : 0;
}

int Reactor::WatchedCount() const { return backend_->WatchedCount() - (wake_fd_ >= 0 ? 1 : 0); }

int Reactor::Poll(int64_t timeout_ms, bool* woken) {
  *woken = false;
  // Room for every watched fd (and the wake-up fd), so one wait reports all of them.
  size_t room = static_cast<size_t>(backend_->WatchedCount()) + 1;
  if (ready_.size() < room) ready_.resize(room);
  int ready = backend_->Wait(timeout_ms, ready_.data(), static_cast<int>(room));
  if (ready < 0) return ready;
  int count = 0;
  for (int i = 0; i < ready; i++) {
    if (ready_[i].fd == wake_fd_) {
      *woken = true;
      DrainWakeups();
    } else {
      ready_[count++] = ready_[i];
    }
  }
  return count;
}

int BytesReadable(int fd) {
  int queued = 0;
  if (::ioctl(fd, FIONREAD, &queued) < 0) return -errno;
  return queued;
}

int Reactor::EnableWakeups(int* fd) {
  *fd = wake_fd_;
  if (wake_fd_ >= 0) return 0;
  int fds[2] = {-1, -1};
  int status = WakeupOpen(fds);
  if (status < 0) return status;
  *fd = fds[0];
  status = SetInterest(fds[0], POLLIN);
  if (status < 0) {
    if (fds[1] != fds[0]) ::close(fds[1]);
    ::close(fds[0]);
    return status;
  }
  wake_fd_ = fds[0];
  wake_write_fd_ = fds[1];
  return 0;
}

void Reactor::Wake() {
  if (wake_fd_ < 0) return;
  // Only the first waker since the last drain writes; EAGAIN (counter full) still wakes.
  if (wake_pending_.exchange(true, std::memory_order_acq_rel)) return;
  uint64_t one = 1;
  ssize_t written;
  do {
    written = ::write(wake_write_fd_, &one, sizeof(one));
  } while (written < 0 && errno == EINTR);
}

void Reactor::DrainWakeups() {
  // Read first, then clear the flag. The other order loses wake-ups for good: a Wake() that
  // lands between clearing and reading writes, the read takes its write, and the flag stays
  // set with nothing left to read, so every later Wake() sees it set and writes nothing (the
  // loop then hears of a stop or a new channel only at its timeout). In this order a Wake()
  // that lands before the clear writes nothing, and need not: the thread is awake already
  // and goes through its turn (or sees the stop) before it waits again; one that lands after
  // writes, which costs one spurious wake-up at worst.
  uint64_t value;
  ssize_t got;
  do {
    got = ::read(wake_fd_, &value, sizeof(value));
  } while (got > 0 || (got < 0 && errno == EINTR));
  wake_pending_.store(false, std::memory_order_release);
}

}  // namespace aco
