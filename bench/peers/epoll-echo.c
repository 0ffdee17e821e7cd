/*
 * epoll-echo: the ceiling for the echo benchmarks. A minimal single-threaded echo server in C:
 * level-triggered epoll, non-blocking sockets, TCP_NODELAY, one read buffer, and a per-connection
 * pending buffer only when the kernel's send buffer is full.
 *
 *   epoll-echo [--host 127.0.0.1] [--port 0]
 *
 * Prints "listening on HOST:PORT (backend epoll, mode c)" once it listens; SIGTERM ends it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 1024
#define BUFSIZE 65536

struct pending {
  char *data;
  size_t len;
  size_t off;
};

static struct pending *pend; /* indexed by fd */
static size_t pend_cap;

static struct pending *pending_of(int fd) {
  if ((size_t)fd >= pend_cap) {
    size_t cap = pend_cap ? pend_cap : 1024;
    while (cap <= (size_t)fd) cap *= 2;
    pend = realloc(pend, cap * sizeof *pend);
    if (!pend) abort();
    memset(pend + pend_cap, 0, (cap - pend_cap) * sizeof *pend);
    pend_cap = cap;
  }
  return &pend[fd];
}

static void drop(int ep, int fd) {
  struct pending *p = pending_of(fd);
  free(p->data);
  *p = (struct pending){0};
  epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
  close(fd);
}

/* Write what is pending; 1 when nothing is left, 0 when the kernel is full, -1 on error. */
static int flush_pending(int fd, struct pending *p) {
  while (p->off < p->len) {
    ssize_t n = send(fd, p->data + p->off, p->len - p->off, MSG_NOSIGNAL);
    if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
    p->off += (size_t)n;
  }
  free(p->data);
  *p = (struct pending){0};
  return 1;
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--host")) host = argv[i + 1];
    else if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
  }
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, host, &addr.sin_addr);
  if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 1024) < 0) {
    perror("epoll-echo: bind/listen");
    return 1;
  }
  socklen_t alen = sizeof addr;
  getsockname(lfd, (struct sockaddr *)&addr, &alen);
  printf("listening on %s:%d (backend epoll, mode c)\n", host, ntohs(addr.sin_port));
  fflush(stdout);

  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  static char buf[BUFSIZE];
  struct epoll_event events[MAX_EVENTS];
  for (;;) {
    int n = epoll_wait(ep, events, MAX_EVENTS, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("epoll-echo: epoll_wait");
      return 1;
    }
    for (int k = 0; k < n; k++) {
      int fd = events[k].data.fd;
      if (fd == lfd) {
        for (;;) {
          int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (cfd < 0) break;
          setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct epoll_event cev = {.events = EPOLLIN, .data.fd = cfd};
          epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &cev);
        }
        continue;
      }
      struct pending *p = pending_of(fd);
      if (events[k].events & EPOLLOUT) {
        int r = flush_pending(fd, p);
        if (r < 0) { drop(ep, fd); continue; }
        if (r == 0) continue;
        struct epoll_event cev = {.events = EPOLLIN, .data.fd = fd};
        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &cev);
      }
      if (!(events[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) || p->len) continue;
      ssize_t got = recv(fd, buf, sizeof buf, 0);
      if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
      if (got <= 0) { drop(ep, fd); continue; }
      ssize_t off = 0;
      while (off < got) {
        ssize_t w = send(fd, buf + off, (size_t)(got - off), MSG_NOSIGNAL);
        if (w < 0) break;
        off += w;
      }
      if (off < got) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) { drop(ep, fd); continue; }
        p->data = malloc((size_t)(got - off));
        memcpy(p->data, buf + off, (size_t)(got - off));
        p->len = (size_t)(got - off);
        p->off = 0;
        /* stop reading until the backlog is written: the same back-pressure as the others */
        struct epoll_event cev = {.events = EPOLLOUT, .data.fd = fd};
        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &cev);
      }
    }
  }
}
