// Which system calls this platform has: the one place that knows (libuv's uv-common.h way).
//
// Each ACO_HAVE_* names one fact. The code that needs a call asks for its macro and keeps a
// POSIX fallback next to it (socket.cc), so a port changes this file, not the callers:
//   ACO_HAVE_EVENTFD       eventfd(2) for reactor wake-ups          else a non-blocking pipe
//   ACO_HAVE_ACCEPT4       accept4(2) with SOCK_NONBLOCK|CLOEXEC    else accept + fcntl
//   ACO_HAVE_SOCK_FLAGS    SOCK_NONBLOCK|SOCK_CLOEXEC in socket()   else socket + fcntl
//   ACO_HAVE_PIPE2         pipe2(2)                                 else pipe + fcntl
//   ACO_HAVE_MSG_NOSIGNAL  send(..., MSG_NOSIGNAL)                  else SO_NOSIGPIPE per socket
//   ACO_HAVE_SO_NOSIGPIPE  the SO_NOSIGPIPE socket option (macOS, the BSDs)
//   ACO_HAVE_EPOLL         the epoll backend is compiled in         (Linux)
//   ACO_HAVE_SPLICE        splice(2) for SplicePipe                  (Linux)
//
// Building with ASYNCORE_FORCE_FALLBACKS defined (binding.gyp: the environment variable of
// that name set to 1; CMake: -DASYNCORE_FORCE_FALLBACKS=ON) turns every ACO_HAVE_* off, so
// the fallbacks run, and are tested, on Linux.
#ifndef ASYNCORE_NATIVE_PLATFORM_H_
#define ASYNCORE_NATIVE_PLATFORM_H_

#include <sys/socket.h>

#if !defined(ASYNCORE_FORCE_FALLBACKS)

#if defined(__linux__)
#define ACO_HAVE_EVENTFD 1
#define ACO_HAVE_EPOLL 1
#define ACO_HAVE_SPLICE 1
#endif

#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__) || \
    defined(__DragonFly__)
#define ACO_HAVE_ACCEPT4 1
#define ACO_HAVE_PIPE2 1
#endif

#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
#define ACO_HAVE_SOCK_FLAGS 1
#endif

#if defined(MSG_NOSIGNAL)
#define ACO_HAVE_MSG_NOSIGNAL 1
#endif

#if defined(SO_NOSIGPIPE)
#define ACO_HAVE_SO_NOSIGPIPE 1
#endif

#endif  // !ASYNCORE_FORCE_FALLBACKS

// With neither MSG_NOSIGNAL nor SO_NOSIGPIPE (Linux with the fallbacks forced), a send to a
// closed peer would raise SIGPIPE if the process did not ignore it. Node ignores SIGPIPE
// process-wide at startup (src/node.cc, PlatformInit), so the send fails with EPIPE: the
// guarantee "a vanished peer gives EPIPE, never a signal" still holds inside Node.
#if defined(ACO_HAVE_MSG_NOSIGNAL)
#define ACO_SEND_FLAGS MSG_NOSIGNAL
#else
#define ACO_SEND_FLAGS 0
#endif

#endif  // ASYNCORE_NATIVE_PLATFORM_H_
