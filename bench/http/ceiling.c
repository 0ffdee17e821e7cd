/* The HTTP benchmark's ceiling: the least work a server can do per keep-alive request on
 * this machine, so wrk's own limit shows. One thread, epoll (level-triggered, as the
 * asyncore loop uses it), one recv() and one send() per batch of requests, a reply built
 * once a second (the same 160-byte hello page and headers as asyncore-http).
 *
 *   cc -O2 -o /tmp/http-ceiling bench/http/ceiling.c && /tmp/http-ceiling [PORT]
 *
 * Prints "listening on 127.0.0.1:PORT" like the other servers of bench/http/run.mjs. Not a
 * real HTTP server: it answers every "\r\n\r\n" with the hello page. SIGTERM/SIGINT end it.
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char kBody[] =
    "<!doctype html>\n<title>asyncore-http</title>\n<h1>Hello from asyncore-http</h1>\n"
    "<p>An HTTP/1.1 server on AsyncChat. Start it with --root DIR to serve files.</p>\n";

static char reply[512];
static size_t reply_length;
static time_t reply_second = -1;

static void refresh_reply(void) {
  time_t now = time(NULL);
  if (now == reply_second) return;
  reply_second = now;
  char date[64];
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", gmtime(&now));
  reply_length = (size_t)snprintf(reply, sizeof reply,
                                  "HTTP/1.1 200 OK\r\nDate: %s\r\nServer: asyncore-http\r\n"
                                  "Content-Type: text/html; charset=utf-8\r\nContent-Length: %zu\r\n"
                                  "Connection: keep-alive\r\n\r\n%s",
                                  date, sizeof kBody - 1, kBody);
}

static volatile sig_atomic_t stopping = 0;
static void on_signal(int sig) { (void)sig; stopping = 1; }

int main(int argc, char** argv) {
  int port = argc > 1 ? atoi(argv[1]) : 0;
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (bind(listener, (struct sockaddr*)&addr, sizeof addr) != 0 || listen(listener, 1024) != 0) {
    perror("bind/listen");
    return 1;
  }
  socklen_t len = sizeof addr;
  getsockname(listener, (struct sockaddr*)&addr, &len);
  printf("listening on 127.0.0.1:%d (backend epoll, mode C)\n", ntohs(addr.sin_port));
  fflush(stdout);

  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = listener};
  epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
  struct epoll_event ready[256];
  static char in[65536];
  static char out[65536];
  while (!stopping) {
    int n = epoll_wait(ep, ready, 256, 1000);
    refresh_reply();
    for (int i = 0; i < n; i++) {
      int fd = ready[i].data.fd;
      if (fd == listener) {
        int conn = accept4(listener, NULL, NULL, SOCK_NONBLOCK);
        if (conn < 0) continue;
        setsockopt(conn, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event cev = {.events = EPOLLIN, .data.fd = conn};
        epoll_ctl(ep, EPOLL_CTL_ADD, conn, &cev);
        continue;
      }
      ssize_t got = recv(fd, in, sizeof in, 0);
      if (got <= 0) {
        close(fd); /* EOF or error; a real server would also handle EAGAIN */
        continue;
      }
      /* One reply per request head in this read (wrk sends whole requests). */
      size_t count = 0;
      for (ssize_t j = 3; j < got; j++) {
        if (in[j] == '\n' && in[j - 1] == '\r' && in[j - 2] == '\n' && in[j - 3] == '\r') count++;
      }
      size_t used = 0;
      for (size_t k = 0; k < count && used + reply_length <= sizeof out; k++, used += reply_length) {
        memcpy(out + used, reply, reply_length);
      }
      if (used > 0) send(fd, out, used, MSG_NOSIGNAL);
    }
  }
  return 0;
}
