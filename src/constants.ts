// The platform's own values of the socket and poll constants, read from the addon.
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
  /** Option level of TCP, for {@link TCP_NODELAY}. */
  IPPROTO_TCP,
  /**
   * `IPPROTO_TCP` option: send small writes at once instead of coalescing them (turns Nagle's algorithm
   * off).
   */
  TCP_NODELAY,
  /** {@link Socket.shutdown} argument: no more receiving. */
  SHUT_RD,
  /** {@link Socket.shutdown} argument: no more sending; the peer reads EOF (a half-close). */
  SHUT_WR,
  /** {@link Socket.shutdown} argument: no more receiving or sending. */
  SHUT_RDWR,
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
