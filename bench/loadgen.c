/*
 * loadgen: an echo load generator for the asyncore benchmarks (bench/run.mjs compiles it
 * with `cc -O2` and pins it to its own core).
 *
 *   loadgen --port P [--host 127.0.0.1] [--conns N] [--size BYTES] [--idle I] [--runs R]
 *           [--duration S] [--warmup S] [--batch B] [--server-pid PID] [--wait] [--hold]
 *
 * It opens I idle connections first (they never send; they are held open so the server has
 * to carry them), then N active connections. Each active connection keeps exactly one
 * message of BYTES in flight: it sends it, waits until every byte has come back, checks each
 * byte against what it sent, and sends the next one. A wrong byte, an early close or a socket
 * error ends the run at once with exit status 1. After a warm-up it counts completed round
 * trips for a fixed duration and prints one JSON object on stdout; it does that R times
 * (R consecutive windows on the same connections, one JSON line each).
 *
 * --wait: once every connection is open, print {"connected": I+N} and wait for a line on
 * standard input before sending anything (the harness waits until the server has accepted
 * them all: a connect() completes at the handshake, long before a slow server accepts).
 * --hold opens the idle connections only, prints {"held": I} and keeps them open until its
 * standard input closes (the harness reads the server's memory meanwhile).
 * --server-pid: also report the CPU time the server used during each window, and how busy
 * each CPU was (/proc/stat), so a run disturbed by other work on the machine shows.
 *
 * One epoll set (level-triggered) holds every connection, so 10,000 connections cost
 * nothing while they are quiet. Connections are opened in batches of B that must complete
 * before the next batch starts, so the server's listen backlog never overflows.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 1024
#define LATENCY_BUCKETS 2000000 /* 1 us buckets up to 2 s; slower round trips go in the last */

struct conn {
  int fd;
  int active;
  uint32_t seq;        /* number of the message in flight */
  size_t sent;         /* bytes of it written so far */
  size_t received;     /* bytes of it echoed so far */
  int want_out;        /* EPOLLOUT registered */
  double sent_at;      /* when its first byte was written */
};

static const char *host = "127.0.0.1";
static int port = 0;
static int nconns = 1;
static size_t msg_size = 64;
static int nidle = 0;
static double duration = 3.0;
static double warmup = 0.5;
static int batch = 500;
static int hold = 0;
static int wait_go = 0;
static int nruns = 1;
static int server_pid = 0;

static int epfd;
static struct conn *conns;
static int total;
static unsigned char *sendbuf;
static unsigned char *recvbuf;

static uint64_t messages;  /* completed round trips */
static int measuring;
static uint64_t latency_hist[LATENCY_BUCKETS];
static double latency_sum;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void fail(const char *what, int err) {
  printf("{\"error\": \"%s%s%s\", \"errors\": 1}\n", what, err ? ": " : "", err ? strerror(err) : "");
  fflush(stdout);
  exit(1);
}

/* The byte at offset i of message seq on connection id: different per connection, per
 * message and per offset, so a byte delivered to the wrong socket or out of order shows. */
static inline unsigned char pattern(int id, uint32_t seq, size_t i) {
  return (unsigned char)(id * 131u + seq * 17u + i * 7u + (i >> 8));
}

static void fill(unsigned char *buf, int id, uint32_t seq) {
  for (size_t i = 0; i < msg_size; i++) buf[i] = pattern(id, seq, i);
}

static void set_interest(struct conn *c, int want_out) {
  if (c->want_out == want_out) return;
  struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.u32 = (uint32_t)(c - conns)};
  if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) fail("epoll_ctl", errno);
  c->want_out = want_out;
}

static void write_some(struct conn *c) {
  int id = (int)(c - conns);
  if (c->sent == 0) c->sent_at = now();
  while (c->sent < msg_size) {
    /* sendbuf holds only the pattern of one connection at a time: refill it per write */
    fill(sendbuf, id, c->seq);
    ssize_t n = send(c->fd, sendbuf + c->sent, msg_size - c->sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      fail("send", errno);
    }
    c->sent += (size_t)n;
  }
  set_interest(c, c->sent < msg_size);
}

static void start_message(struct conn *c) {
  c->sent = 0;
  c->received = 0;
  write_some(c);
}

static void record_latency(double seconds) {
  long us = (long)(seconds * 1e6);
  if (us < 0) us = 0;
  if (us >= LATENCY_BUCKETS) us = LATENCY_BUCKETS - 1;
  latency_hist[us]++;
  latency_sum += seconds;
}

static void read_some(struct conn *c) {
  int id = (int)(c - conns);
  for (;;) {
    size_t want = msg_size - c->received;
    ssize_t n = recv(c->fd, recvbuf, want, 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      fail("recv", errno);
    }
    if (n == 0) fail(c->active ? "server closed an active connection" : "server closed an idle connection", 0);
    if (!c->active) fail("server sent data on an idle connection", 0);
    if (c->received + (size_t)n > c->sent) fail("server echoed bytes that were not sent yet", 0);
    for (ssize_t i = 0; i < n; i++) {
      size_t at = c->received + (size_t)i;
      unsigned char expected = pattern(id, c->seq, at);
      if (recvbuf[i] != expected) {
        char what[160];
        snprintf(what, sizeof what, "echo mismatch on connection %d message %u byte %zu: got %u, expected %u", id,
                 c->seq, at, recvbuf[i], expected);
        fail(what, 0);
      }
    }
    c->received += (size_t)n;
    if (c->received == msg_size) {
      if (measuring) {
        messages++;
        record_latency(now() - c->sent_at);
      }
      c->seq++;
      start_message(c);
      return;
    }
  }
}

/* Open connections [from, to) in batches; each batch completes before the next begins. */
static void open_connections(int from, int to, int active) {
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) fail("bad --host (IPv4 only)", 0);
  for (int start = from; start < to; start += batch) {
    int end = start + batch < to ? start + batch : to;
    int pending = 0;
    for (int i = start; i < end; i++) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) fail("socket", errno);
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      /* close with RST at the end: no TIME_WAIT pile-up across thousands of runs */
      struct linger lg = {.l_onoff = 1, .l_linger = 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      conns[i] = (struct conn){.fd = fd, .active = active, .want_out = 1};
      if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) fail("connect", errno);
      struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)i};
      if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) fail("epoll_ctl", errno);
      pending++;
    }
    double deadline = now() + 30.0;
    struct epoll_event events[MAX_EVENTS];
    while (pending > 0) {
      if (now() > deadline) fail("connections did not complete within 30 s", 0);
      int n = epoll_wait(epfd, events, MAX_EVENTS, 1000);
      if (n < 0 && errno != EINTR) fail("epoll_wait", errno);
      for (int k = 0; k < n; k++) {
        struct conn *c = &conns[events[k].data.u32];
        if (!c->want_out) {
          if (events[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) fail("server closed a new connection", 0);
          continue;
        }
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) fail("connect", err);
        if (events[k].events & (EPOLLHUP | EPOLLERR)) fail("connect: hang-up", 0);
        set_interest(c, 0);
        pending--;
      }
    }
  }
}


/* CPU time of a process (all its threads) in seconds, from /proc/PID/stat; -1 if unknown. */
static double process_cpu(int pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')'); /* the command name may hold spaces */
  if (!p) return -1;
  unsigned long long utime = 0, stime = 0;
  /* fields after ")": state(3) ... utime(14) stime(15) */
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2) return -1;
  return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* Busy seconds of cpu0 and cpu1 (everything but idle and iowait), from /proc/stat. */
static void cpu_busy(double busy[2]) {
  busy[0] = busy[1] = -1;
  FILE *f = fopen("/proc/stat", "r");
  if (!f) return;
  char line[512];
  while (fgets(line, sizeof line, f)) {
    int cpu;
    unsigned long long v[8] = {0};
    if (sscanf(line, "cpu%d %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
               &v[6], &v[7]) == 9 && cpu >= 0 && cpu < 2) {
      busy[cpu] = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
    }
  }
  fclose(f);
}

struct sample {
  double t, server, self, busy[2];
  uint64_t messages;
};

static void take_sample(struct sample *s) {
  s->t = now();
  s->server = server_pid ? process_cpu(server_pid) : -1;
  s->self = self_cpu();
  cpu_busy(s->busy);
  s->messages = messages;
}

static void report(const struct sample *a, const struct sample *b, int run) {
  double seconds = b->t - a->t;
  uint64_t count = b->messages - a->messages;
  uint64_t seen = 0, p50 = 0, p99 = 0;
  for (long us = 0; us < LATENCY_BUCKETS; us++) {
    seen += latency_hist[us];
    if (!p50 && seen * 2 >= count) p50 = (uint64_t)us + 1;
    if (!p99 && seen * 100 >= count * 99) p99 = (uint64_t)us + 1;
  }
  if (count == 0) fail("no round trip completed during the measurement", 0);
  double server = a->server >= 0 && b->server >= 0 ? (b->server - a->server) / seconds : -1;
  printf("{\"run\": %d, \"conns\": %d, \"idle\": %d, \"size\": %zu, \"seconds\": %.4f, \"messages\": %llu, "
         "\"msgs_per_s\": %.1f, \"bytes_per_s\": %.1f, \"latency_mean_us\": %.2f, \"latency_p50_us\": %llu, "
         "\"latency_p99_us\": %llu, \"server_cpu\": %.3f, \"loadgen_cpu\": %.3f, \"cpu0_busy\": %.3f, "
         "\"cpu1_busy\": %.3f, \"errors\": 0}\n",
         run, nconns, nidle, msg_size, seconds, (unsigned long long)count, count / seconds,
         2.0 * msg_size * count / seconds, latency_sum / count * 1e6, (unsigned long long)p50,
         (unsigned long long)p99, server, (b->self - a->self) / seconds, (b->busy[0] - a->busy[0]) / seconds,
         (b->busy[1] - a->busy[1]) / seconds);
  fflush(stdout);
}

static void run_active(void) {
  for (int i = nidle; i < total; i++) start_message(&conns[i]);
  struct epoll_event events[MAX_EVENTS];
  double stop_warmup = now() + warmup;
  for (int run = 1; run <= nruns; run++) {
    /* the first window starts after the warm-up; the next ones follow back to back */
    measuring = 0;
    struct sample a, b;
    int phase = 0; /* 0 warm-up, 1 measuring */
    for (;;) {
      double t = now();
      if (phase == 0 && t >= stop_warmup) {
        memset(latency_hist, 0, sizeof latency_hist);
        latency_sum = 0;
        take_sample(&a);
        measuring = 1;
        phase = 1;
      }
      if (phase == 1 && t >= a.t + duration) break;
      int n = epoll_wait(epfd, events, MAX_EVENTS, 100);
      if (n < 0 && errno != EINTR) fail("epoll_wait", errno);
      for (int k = 0; k < n; k++) {
        struct conn *c = &conns[events[k].data.u32];
        uint32_t ev = events[k].events;
        if (ev & EPOLLIN) read_some(c);
        else if (ev & (EPOLLHUP | EPOLLERR)) fail(c->active ? "active connection hung up" : "idle connection hung up", 0);
        if ((ev & EPOLLOUT) && c->active && c->sent < msg_size) write_some(c);
      }
    }
    take_sample(&b);
    measuring = 0;
    report(&a, &b, run);
  }
}

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen --port P [--host 127.0.0.1] [--conns N] [--size BYTES] [--idle I]\n"
          "               [--runs R] [--duration S] [--warmup S] [--batch B] [--server-pid PID]\n"
          "               [--wait] [--hold]\n");
  exit(2);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--hold")) { hold = 1; continue; }
    if (!strcmp(a, "--wait")) { wait_go = 1; continue; }
    if (!v) usage();
    if (!strcmp(a, "--host")) host = v;
    else if (!strcmp(a, "--port")) port = atoi(v);
    else if (!strcmp(a, "--conns")) nconns = atoi(v);
    else if (!strcmp(a, "--size")) msg_size = (size_t)atol(v);
    else if (!strcmp(a, "--idle")) nidle = atoi(v);
    else if (!strcmp(a, "--duration")) duration = atof(v);
    else if (!strcmp(a, "--warmup")) warmup = atof(v);
    else if (!strcmp(a, "--batch")) batch = atoi(v);
    else if (!strcmp(a, "--runs")) nruns = atoi(v);
    else if (!strcmp(a, "--server-pid")) server_pid = atoi(v);
    else usage();
    i++;
  }
  if (port <= 0 || port > 65535 || nconns < 0 || nidle < 0 || msg_size == 0 || batch <= 0 || duration <= 0 || nruns <= 0) usage();
  if (hold) nconns = 0;
  if (!hold && nconns == 0) usage();

  total = nidle + nconns;
  conns = calloc((size_t)total + 1, sizeof *conns);
  sendbuf = malloc(msg_size);
  recvbuf = malloc(msg_size);
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (!conns || !sendbuf || !recvbuf || epfd < 0) fail("out of memory or epoll_create1", errno);

  open_connections(0, nidle, 0);
  if (hold) {
    printf("{\"held\": %d}\n", nidle);
    fflush(stdout);
    char buf[256];
    while (read(0, buf, sizeof buf) > 0) {
    }
    return 0;
  }
  open_connections(nidle, total, 1);
  if (wait_go) {
    printf("{\"connected\": %d}\n", total);
    fflush(stdout);
    char buf[256];
    if (read(0, buf, sizeof buf) <= 0) fail("standard input closed before the go line", 0);
  }
  run_active();
  return 0;
}
