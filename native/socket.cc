// The socket layer. See socket.h: every function returns -errno on failure.
#include "socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <unistd.h>

#include "platform.h"
#ifdef ACO_HAVE_EVENTFD
#include <sys/eventfd.h>
#endif

#include <cerrno>
#include <cstring>

namespace aco {
namespace {

// Retries a call interrupted by a signal (PEP 475): a signal is never an error here.
template <typename Call>
auto RetryOnEintr(Call call) -> decltype(call()) {
  decltype(call()) result;
  do {
    result = call();
  } while (result < 0 && errno == EINTR);
  return result < 0 ? -errno : result;
}

int SetCloseOnExec(int fd) {
  int flags = ::fcntl(fd, F_GETFD);
  if (flags < 0) return -errno;
  if ((flags & FD_CLOEXEC) == 0 && ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) return -errno;
  return 0;
}

// What every new fd gets where the creating call could not ask for it: non-blocking and
// close-on-exec (there is a window before fcntl in which a concurrent fork+exec inherits
// the fd: the price of the fallback, as in libuv).
int MakeNonBlockingCloseOnExec(int fd) {
  int status = SetCloseOnExec(fd);
  return status < 0 ? status : SetNonBlocking(fd, true);
}

// The per-socket half of "no SIGPIPE" where send() has no MSG_NOSIGNAL.
int SuppressSigpipe(int fd) {
#if !defined(ACO_HAVE_MSG_NOSIGNAL) && defined(ACO_HAVE_SO_NOSIGPIPE)
  int on = 1;
  if (::setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &on, sizeof(on)) < 0) return -errno;
#else
  (void)fd;
#endif
  return 0;
}

// Finishes a socket fd that a call has just created: the fallbacks above where the call
// could not apply them itself. On failure the fd is closed and -errno returned.
int FinishSocket(int fd, bool flags_applied) {
  int status = flags_applied ? 0 : MakeNonBlockingCloseOnExec(fd);
  if (status == 0) status = SuppressSigpipe(fd);
  if (status < 0) {
    ::close(fd);
    return status;
  }
  return fd;
}

#ifdef ACO_HAVE_SOCK_FLAGS
constexpr int kNewSocketFlags = SOCK_NONBLOCK | SOCK_CLOEXEC;
constexpr bool kSocketFlagsApplied = true;
#else
constexpr int kNewSocketFlags = 0;
constexpr bool kSocketFlagsApplied = false;
#endif

}  // namespace

int SocketOpen(int family, int type) {
  int fd = ::socket(family, type | kNewSocketFlags, 0);
  return fd < 0 ? -errno : FinishSocket(fd, kSocketFlagsApplied);
}

int SocketPair(int family, int type, int fds[2]) {
  if (::socketpair(family, type | kNewSocketFlags, 0, fds) < 0) return -errno;
  int status = FinishSocket(fds[0], kSocketFlagsApplied);
  if (status < 0) {
    ::close(fds[1]);
    return status;
  }
  status = FinishSocket(fds[1], kSocketFlagsApplied);
  if (status < 0) {
    ::close(fds[0]);
    return status;
  }
  return 0;
}

int Close(int fd) {
  // Linux releases the fd even when close() reports EINTR, so it must not be retried:
  // a retry could close an fd another thread has just been given.
  if (::close(fd) < 0 && errno != EINTR) return -errno;
  return 0;
}

int Dup(int fd) {
  int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  return copy < 0 ? -errno : copy;
}

int SetNonBlocking(int fd, bool non_blocking) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return -errno;
  int wanted = non_blocking ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (wanted != flags && ::fcntl(fd, F_SETFL, wanted) < 0) return -errno;
  return 0;
}

int Bind(int fd, const SockAddr& addr) {
  return ::bind(fd, addr.raw(), addr.length) < 0 ? -errno : 0;
}

int Listen(int fd, int backlog) { return ::listen(fd, backlog) < 0 ? -errno : 0; }

int Accept(int fd, SockAddr* peer) {
  peer->length = sizeof(peer->storage);
#ifdef ACO_HAVE_ACCEPT4
  int accepted = RetryOnEintr(
      [&] { return ::accept4(fd, peer->raw(), &peer->length, SOCK_NONBLOCK | SOCK_CLOEXEC); });
  return accepted < 0 ? accepted : FinishSocket(accepted, true);
#else
  // An accepted socket does not reliably inherit O_NONBLOCK (Linux never, the BSDs do).
  int accepted = RetryOnEintr([&] { return ::accept(fd, peer->raw(), &peer->length); });
  return accepted < 0 ? accepted : FinishSocket(accepted, false);
#endif
}

int Connect(int fd, const SockAddr& addr) {
  // A non-blocking connect interrupted by a signal goes on in the background; the caller
  // sees EINTR like EINPROGRESS and waits for writability, as Python's connect_ex does.
  return ::connect(fd, addr.raw(), addr.length) < 0 ? -errno : 0;
}

int Shutdown(int fd, int how) { return ::shutdown(fd, how) < 0 ? -errno : 0; }

ssize_t Send(int fd, const void* data, size_t length, int flags) {
  return RetryOnEintr([&] { return ::send(fd, data, length, flags | ACO_SEND_FLAGS); });
}

ssize_t Recv(int fd, void* buffer, size_t length, int flags) {
  return RetryOnEintr([&] { return ::recv(fd, buffer, length, flags); });
}

ssize_t SendTo(int fd, const void* data, size_t length, int flags, const SockAddr& to) {
  return RetryOnEintr(
      [&] { return ::sendto(fd, data, length, flags | ACO_SEND_FLAGS, to.raw(), to.length); });
}

ssize_t RecvFrom(int fd, void* buffer, size_t length, int flags, SockAddr* from) {
  from->length = sizeof(from->storage);
  return RetryOnEintr(
      [&] { return ::recvfrom(fd, buffer, length, flags, from->raw(), &from->length); });
}

ssize_t Read(int fd, void* buffer, size_t length) {
  return RetryOnEintr([&] { return ::read(fd, buffer, length); });
}

ssize_t Write(int fd, const void* data, size_t length) {
  return RetryOnEintr([&] { return ::write(fd, data, length); });
}

int PipeOpen(int fds[2]) {
#ifdef ACO_HAVE_PIPE2
  return ::pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0 ? -errno : 0;
#else
  if (::pipe(fds) < 0) return -errno;
  for (int i = 0; i < 2; i++) {
    int status = MakeNonBlockingCloseOnExec(fds[i]);
    if (status < 0) {
      ::close(fds[0]);
      ::close(fds[1]);
      return status;
    }
  }
  return 0;
#endif
}

int WakeupOpen(int fds[2]) {
#ifdef ACO_HAVE_EVENTFD
  int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return -errno;
  fds[0] = fd;
  fds[1] = fd;
  return 0;
#else
  return PipeOpen(fds);
#endif
}

int SetPipeSize(int fd, int bytes) {
#ifdef F_SETPIPE_SZ
  int granted = ::fcntl(fd, F_SETPIPE_SZ, bytes);
  if (granted >= 0) return granted;
  // EPERM: past the per-user pipe limits the pipe keeps its size, which is still usable.
  if (errno != EPERM) return -errno;
  int current = ::fcntl(fd, F_GETPIPE_SZ);
  return current < 0 ? -errno : current;
#else
  (void)fd;
  (void)bytes;
  return -ENOSYS;
#endif
}

ssize_t Splice(int fd_in, int fd_out, size_t length) {
#ifdef ACO_HAVE_SPLICE
  // SPLICE_F_MOVE lets the kernel hand pages over instead of copying where it can;
  // SPLICE_F_NONBLOCK keeps the pipe end from blocking (the socket is non-blocking already).
  return RetryOnEintr([&] {
    return ::splice(fd_in, nullptr, fd_out, nullptr, length, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  });
#else
  (void)fd_in;
  (void)fd_out;
  (void)length;
  return -ENOSYS;
#endif
}

int GetSockName(int fd, SockAddr* out) {
  out->length = sizeof(out->storage);
  return ::getsockname(fd, out->raw(), &out->length) < 0 ? -errno : 0;
}

int GetPeerName(int fd, SockAddr* out) {
  out->length = sizeof(out->storage);
  return ::getpeername(fd, out->raw(), &out->length) < 0 ? -errno : 0;
}

int SetSockOptInt(int fd, int level, int option, int value) {
  return ::setsockopt(fd, level, option, &value, sizeof(value)) < 0 ? -errno : 0;
}

int GetSockOptInt(int fd, int level, int option, int* value) {
  *value = 0;
  socklen_t length = sizeof(*value);
  return ::getsockopt(fd, level, option, value, &length) < 0 ? -errno : 0;
}

int SetSockOptBytes(int fd, int level, int option, const void* value, size_t length) {
  return ::setsockopt(fd, level, option, value, static_cast<socklen_t>(length)) < 0 ? -errno : 0;
}

int GetSockOptBytes(int fd, int level, int option, void* buffer, size_t capacity) {
  auto length = static_cast<socklen_t>(capacity);
  if (::getsockopt(fd, level, option, buffer, &length) < 0) return -errno;
  return static_cast<int>(length < capacity ? length : capacity);
}

int MakeInetAddress(int family, const std::string& host, int port, SockAddr* out) {
  if (port < 0 || port > 65535) return -EINVAL;
  *out = SockAddr{};
  if (family == AF_INET || family == AF_UNSPEC) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&out->storage);
    if (::inet_pton(AF_INET, host.c_str(), &sin->sin_addr) == 1) {
      sin->sin_family = AF_INET;
      sin->sin_port = htons(static_cast<uint16_t>(port));
      out->length = sizeof(*sin);
      return 0;
    }
  }
  if (family == AF_INET6 || family == AF_UNSPEC) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&out->storage);
    std::string address = host;
    size_t percent = host.find('%');
    if (percent != std::string::npos) {
      address = host.substr(0, percent);
      std::string scope = host.substr(percent + 1);
      unsigned index = ::if_nametoindex(scope.c_str());
      if (index == 0) {
        char* end = nullptr;
        unsigned long numeric = std::strtoul(scope.c_str(), &end, 10);
        if (scope.empty() || *end != '\0') return -EINVAL;
        index = static_cast<unsigned>(numeric);
      }
      sin6->sin6_scope_id = index;
    }
    if (::inet_pton(AF_INET6, address.c_str(), &sin6->sin6_addr) == 1) {
      sin6->sin6_family = AF_INET6;
      sin6->sin6_port = htons(static_cast<uint16_t>(port));
      out->length = sizeof(*sin6);
      return 0;
    }
  }
  if (family != AF_INET && family != AF_INET6 && family != AF_UNSPEC) return -EAFNOSUPPORT;
  return -EINVAL;
}

int MakeUnixAddress(const std::string& path, SockAddr* out) {
  *out = SockAddr{};
  auto* sun = reinterpret_cast<sockaddr_un*>(&out->storage);
  // A filesystem path needs room for its terminating NUL; an abstract name does not.
  bool abstract = !path.empty() && path[0] == '\0';
  size_t room = sizeof(sun->sun_path) - (abstract ? 0 : 1);
  if (path.size() > room) return -ENAMETOOLONG;
  sun->sun_family = AF_UNIX;
  std::memcpy(sun->sun_path, path.data(), path.size());
  out->length =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (abstract ? 0 : 1));
  return 0;
}

int FormatAddress(const SockAddr& addr, std::string* host, int* port) {
  char text[INET6_ADDRSTRLEN + IF_NAMESIZE + 2] = {0};
  switch (addr.family()) {
    case AF_INET: {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(&addr.storage);
      ::inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
      *host = text;
      *port = ntohs(sin->sin_port);
      return 0;
    }
    case AF_INET6: {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&addr.storage);
      ::inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text));
      *host = text;
      if (sin6->sin6_scope_id != 0) {
        char name[IF_NAMESIZE] = {0};
        if (::if_indextoname(sin6->sin6_scope_id, name) != nullptr) {
          *host += '%';
          *host += name;
        } else {
          *host += '%' + std::to_string(sin6->sin6_scope_id);
        }
      }
      *port = ntohs(sin6->sin6_port);
      return 0;
    }
    case AF_UNIX: {
      const auto* sun = reinterpret_cast<const sockaddr_un*>(&addr.storage);
      size_t offset = offsetof(sockaddr_un, sun_path);
      size_t length = addr.length > offset ? addr.length - offset : 0;
      // A filesystem path ends at its NUL; an abstract name (leading NUL) uses its length.
      if (length > 0 && sun->sun_path[0] != '\0') length = strnlen(sun->sun_path, length);
      host->assign(sun->sun_path, length);
      *port = -1;
      return 0;
    }
    case AF_UNSPEC:
      // An unconnected datagram peer or an unbound socket.
      host->clear();
      *port = 0;
      return 0;
    default:
      return -EAFNOSUPPORT;
  }
}

int Resolve(int family, int type, const std::string& host, int port, SockAddr* out,
            int* sys_errno) {
  *sys_errno = 0;
  addrinfo hints{};
  hints.ai_family = family;
  hints.ai_socktype = type;
  hints.ai_flags = host.empty() ? AI_PASSIVE : 0;
  std::string service = std::to_string(port);
  addrinfo* results = nullptr;
  int status =
      ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &results);
  if (status != 0) {
    if (status == EAI_SYSTEM) *sys_errno = errno;
    return status;
  }
  *out = SockAddr{};
  std::memcpy(&out->storage, results->ai_addr, results->ai_addrlen);
  out->length = results->ai_addrlen;
  ::freeaddrinfo(results);
  return 0;
}

}  // namespace aco
