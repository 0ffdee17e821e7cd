// The socket layer: thin, plain C++ wrappers over the BSD socket calls.
//
// Nothing here knows N-API. Every function follows libuv's convention: it returns a
// non-negative result on success and -errno on failure, so the caller decides whether a
// failure is an exception (Socket.connect) or an expected outcome (EAGAIN in a hot send).
#ifndef ASYNCORE_NATIVE_SOCKET_H_
#define ASYNCORE_NATIVE_SOCKET_H_

#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <string>

namespace aco {

// A socket address of any family together with its length.
struct SockAddr {
  sockaddr_storage storage{};
  socklen_t length = 0;

  int family() const { return storage.ss_family; }
  sockaddr* raw() { return reinterpret_cast<sockaddr*>(&storage); }
  const sockaddr* raw() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

// --- Lifetime --------------------------------------------------------------------------
// A new socket, always non-blocking and close-on-exec (and SO_NOSIGPIPE where send() has no
// MSG_NOSIGNAL). Platform differences are settled in platform.h.
int SocketOpen(int family, int type);
// Two connected sockets (non-blocking, close-on-exec) written to fds[0] and fds[1].
int SocketPair(int family, int type, int fds[2]);
int Close(int fd);
// A duplicate of fd (close-on-exec), as FileWrapper needs.
int Dup(int fd);
int SetNonBlocking(int fd, bool non_blocking);

// --- Connection ------------------------------------------------------------------------
int Bind(int fd, const SockAddr& addr);
int Listen(int fd, int backlog);
// Accepts one connection; the new fd is non-blocking and close-on-exec (accept4, or accept
// and fcntl where accept4 is missing).
int Accept(int fd, SockAddr* peer);
int Connect(int fd, const SockAddr& addr);
int Shutdown(int fd, int how);

// --- Data ------------------------------------------------------------------------------
// send() with MSG_NOSIGNAL always added where it exists (SO_NOSIGPIPE on the socket
// elsewhere, see platform.h): a closed peer yields EPIPE, never SIGPIPE.
ssize_t Send(int fd, const void* data, size_t length, int flags);
ssize_t Recv(int fd, void* buffer, size_t length, int flags);
ssize_t SendTo(int fd, const void* data, size_t length, int flags, const SockAddr& to);
ssize_t RecvFrom(int fd, void* buffer, size_t length, int flags, SockAddr* from);
// read()/write() for FileWrapper (pipes, terminals); write() cannot raise SIGPIPE on a
// socket fd but can on a pipe, which is why Node ignores SIGPIPE process-wide.
ssize_t Read(int fd, void* buffer, size_t length);
ssize_t Write(int fd, const void* data, size_t length);

// --- Zero-copy forwarding -------------------------------------------------------------
// A pipe with both ends non-blocking and close-on-exec: fds[0] reads, fds[1] writes.
int PipeOpen(int fds[2]);
// The fd(s) another thread writes to wake a reactor: one eventfd (fds[0] == fds[1]) where it
// exists, else a pipe (PipeOpen). Either way non-blocking, close-on-exec; read fds[0] until
// EAGAIN to drain, write 8 bytes to fds[1] to wake.
int WakeupOpen(int fds[2]);
// Asks the kernel to make a pipe hold at least `bytes` (F_SETPIPE_SZ). Returns the size the
// pipe has afterwards: the one granted, or the one it kept when the kernel refused to grow it
// (EPERM, past the per-user pipe limits). -ENOSYS where the call does not exist.
int SetPipeSize(int fd, int bytes);
// Moves up to length bytes from fd_in to fd_out inside the kernel, one of them a pipe
// (splice(2), never blocking on the pipe): the bytes never reach user space. 0 at EOF of
// fd_in. -ENOSYS where splice is not compiled in (ACO_HAVE_SPLICE), where a caller falls
// back to recv()/send().
ssize_t Splice(int fd_in, int fd_out, size_t length);

// --- Names and options -----------------------------------------------------------------
int GetSockName(int fd, SockAddr* out);
int GetPeerName(int fd, SockAddr* out);
int SetSockOptInt(int fd, int level, int option, int value);
int GetSockOptInt(int fd, int level, int option, int* value);
// The raw forms, for struct-valued options (SO_LINGER, SO_RCVTIMEO ...), as Python's
// setsockopt(level, option, bytes) and getsockopt(level, option, buflen). GetSockOptBytes
// returns how many bytes the kernel wrote (at most capacity).
int SetSockOptBytes(int fd, int level, int option, const void* value, size_t length);
int GetSockOptBytes(int fd, int level, int option, void* buffer, size_t capacity);

// --- Addresses -------------------------------------------------------------------------
// Parses a numeric IPv4 or IPv6 host (an IPv6 host may carry a %scope) and a port.
// family may be AF_UNSPEC to accept either. -EINVAL when host is not a numeric address
// of that family, -EAFNOSUPPORT for a family that is neither.
int MakeInetAddress(int family, const std::string& host, int port, SockAddr* out);
// A UNIX socket path; a leading NUL byte names Linux's abstract namespace.
// -ENAMETOOLONG when it does not fit sun_path.
int MakeUnixAddress(const std::string& path, SockAddr* out);
// The inverse: host and port for AF_INET/AF_INET6, path (port -1) for AF_UNIX.
int FormatAddress(const SockAddr& addr, std::string* host, int* port);

// Name resolution with getaddrinfo(), as Python's socket module does it: the first
// result for (family, type). An empty host means "any address" (INADDR_ANY / in6addr_any).
// Returns 0, or a getaddrinfo() error code (EAI_*); for EAI_SYSTEM *sys_errno is set.
int Resolve(int family, int type, const std::string& host, int port, SockAddr* out, int* sys_errno);

}  // namespace aco

#endif  // ASYNCORE_NATIVE_SOCKET_H_
