// The platform's own values of the socket and poll constants, read from the addon. Where a
// platform lacks one (the TCP keepalive trio on some BSDs) the addon leaves it out, so it is
// undefined there, as the attribute is absent from Python's socket module.
import { native } from './binding.js';

export const {
  /**
   * Address family IPv4: addresses are `[host, port]` (Python's `socket.AF_INET`). The default family
   * of {@link Socket} and {@link Dispatcher.createSocket}.
   */
  AF_INET,
  /**
   * Address family IPv6: addresses are `[host, port]` with a host such as `'::1'` (Python's
   * `socket.AF_INET6`).
   */
  AF_INET6,
  /**
   * Address family UNIX domain: addresses are filesystem paths (Python's `socket.AF_UNIX`). The default
   * family of {@link socketpair}.
   */
  AF_UNIX,
  /**
   * Socket type: a reliable byte stream (TCP, or a stream UNIX socket). The default type everywhere.
   */
  SOCK_STREAM,
  /**
   * Socket type: datagrams (UDP, or a datagram UNIX socket); use {@link Socket.sendto} and
   * {@link Socket.recvfrom}.
   */
  SOCK_DGRAM,
  /** Option level of the socket itself, for {@link Socket.setsockopt} and {@link Socket.getsockopt}. */
  SOL_SOCKET,
  /**
   * `SOL_SOCKET` option: allow binding an address still in TIME_WAIT (what
   * {@link Dispatcher.setReuseAddr} sets).
   */
  SO_REUSEADDR,
  /**
   * `SOL_SOCKET` option: let several sockets bind the same port; the kernel spreads connections between
   * them.
   */
  SO_REUSEPORT,
  /**
   * `SOL_SOCKET` option, read-only: the pending error of a socket (0 if none). A non-blocking connect's
   * outcome is read from it.
   */
  SO_ERROR,
  /** `SOL_SOCKET` option: the size of the kernel's send buffer, in bytes. */
  SO_SNDBUF,
  /** `SOL_SOCKET` option: the size of the kernel's receive buffer, in bytes. */
  SO_RCVBUF,
  /**
   * `SOL_SOCKET` option: send keepalive probes on an idle connection (tune them with
   * {@link TCP_KEEPIDLE}, {@link TCP_KEEPINTVL} and {@link TCP_KEEPCNT}).
   */
  SO_KEEPALIVE,
  /**
   * `SOL_SOCKET` option whose value is a `struct linger` (two C ints on Linux: on/off, seconds): pass
   * its bytes to {@link Socket.setsockopt} and read them with `getsockopt(SOL_SOCKET, SO_LINGER, 8)`.
   */
  SO_LINGER,
  /** `SOL_SOCKET` option: allow sending datagrams to a broadcast address. */
  SO_BROADCAST,
  /** `SOL_SOCKET` option: the fewest bytes a receive waits for (and readiness reports), default 1. */
  SO_RCVLOWAT,
  /**
   * `SOL_SOCKET` option whose value is a `struct timeval`, as bytes: how long a receive (or accept) on a
   * blocking socket waits before it fails with `EAGAIN`.
   */
  SO_RCVTIMEO,
  /** `SOL_SOCKET` option whose value is a `struct timeval`, as bytes: the same for a send. */
  SO_SNDTIMEO,
  /** Option level of TCP, for {@link TCP_NODELAY}. */
  IPPROTO_TCP,
  /**
   * `IPPROTO_TCP` option: send small writes at once instead of coalescing them (turns Nagle's algorithm
   * off).
   */
  TCP_NODELAY,
  /**
   * `IPPROTO_TCP` option: seconds a connection stays idle before the first keepalive probe (macOS calls
   * it `TCP_KEEPALIVE`; this is that value there).
   */
  TCP_KEEPIDLE,
  /** `IPPROTO_TCP` option: seconds between keepalive probes. */
  TCP_KEEPINTVL,
  /** `IPPROTO_TCP` option: unanswered keepalive probes before the connection is dropped. */
  TCP_KEEPCNT,
  /** Option level of IPv6, for {@link IPV6_V6ONLY}. */
  IPPROTO_IPV6,
  /**
   * `IPPROTO_IPV6` option: an AF_INET6 socket accepts IPv6 only, not IPv4-mapped addresses too (set it
   * before `bind`).
   */
  IPV6_V6ONLY,
  /** {@link Socket.shutdown} argument: no more receiving. */
  SHUT_RD,
  /** {@link Socket.shutdown} argument: no more sending; the peer reads EOF (a half-close). */
  SHUT_WR,
  /** {@link Socket.shutdown} argument: no more receiving or sending. */
  SHUT_RDWR,
  /** `recv` flag: read the data but leave it queued, so the next receive returns it again. */
  MSG_PEEK,
  /**
   * `send`/`recv` flag: urgent (out-of-band) data; the receiver is told by a {@link POLLPRI} event
   * (`handleExpt()`) and reads it with `recv(1, MSG_OOB)`.
   */
  MSG_OOB,
  /** `send`/`recv` flag: do not wait, even on a blocking socket (`SocketError('EAGAIN')` instead). */
  MSG_DONTWAIT,
  /** `recv` flag: on a blocking socket, wait until all `n` bytes arrived (or EOF, an error, a signal). */
  MSG_WAITALL,
  /**
   * Poll event flag for {@link readwrite}: data to read, or a connection to accept (Python's
   * `select.POLLIN`).
   */
  POLLIN,
  /**
   * Poll event flag for {@link readwrite}: urgent (out-of-band) data, dispatched to
   * `handleExptEvent()`.
   */
  POLLPRI,
  /**
   * Poll event flag for {@link readwrite}: writing would not block, or a non-blocking connect finished.
   */
  POLLOUT,
  /**
   * Poll event flag, only ever reported: an error on the fd; {@link readwrite} calls `handleClose()`.
   */
  POLLERR,
  /**
   * Poll event flag, only ever reported: the peer hung up; {@link readwrite} calls `handleClose()` once
   * the input still queued has been read.
   */
  POLLHUP,
  /**
   * Poll event flag, only ever reported: the fd is not open; {@link readwrite} calls `handleClose()`.
   */
  POLLNVAL,
} = native.constants;

/**
 * `select()` cannot watch an fd at or above this number (1024 on Linux): the `'select'` backend throws
 * a `RangeError` for such an fd. Use `'poll'` or `'epoll'` for more connections.
 */
export const FD_SETSIZE = native.constants.FD_SETSIZE;
