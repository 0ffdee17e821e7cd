// The platform's own values of the socket and poll constants, read from the addon.
import { native } from './binding.js';

export const {
  AF_INET,
  AF_INET6,
  AF_UNIX,
  SOCK_STREAM,
  SOCK_DGRAM,
  SOL_SOCKET,
  SO_REUSEADDR,
  SO_REUSEPORT,
  SO_ERROR,
  SO_SNDBUF,
  SO_RCVBUF,
  IPPROTO_TCP,
  TCP_NODELAY,
  SHUT_RD,
  SHUT_WR,
  SHUT_RDWR,
  POLLIN,
  POLLPRI,
  POLLOUT,
  POLLERR,
  POLLHUP,
  POLLNVAL,
} = native.constants;

/** select() cannot watch an fd at or above this number. */
export const FD_SETSIZE = native.constants.FD_SETSIZE;
