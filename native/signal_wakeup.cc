#include "signal_wakeup.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>

#include "socket.h"

namespace aco {
namespace {

// Read by the handler: written once, before any handler that reads them is installed.
int g_pipe[2] = {-1, -1};
struct sigaction g_previous[NSIG];
std::mutex g_install_mutex;

void OnSignal(int signo, siginfo_t* info, void* context) {
  int saved_errno = errno;
  auto byte = static_cast<unsigned char>(signo);
  // Only async-signal-safe calls here; a full pipe just means a wake-up is already pending.
  ssize_t ignored = ::write(g_pipe[1], &byte, 1);
  (void)ignored;
  const struct sigaction& previous = g_previous[signo];
  // A one-shot handler (SA_RESETHAND) is a "terminate now" handler such as Node's own for
  // SIGINT/SIGTERM, which re-raises the signal; that default is what the wake-up replaces.
  // Anything else (libuv's handler behind process.on('SIGINT')) still runs.
  if ((previous.sa_flags & SA_RESETHAND) != 0) {
    // not chained
  } else if ((previous.sa_flags & SA_SIGINFO) != 0) {
    if (previous.sa_sigaction != nullptr) previous.sa_sigaction(signo, info, context);
  } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN &&
             previous.sa_handler != nullptr) {
    previous.sa_handler(signo);
  }
  errno = saved_errno;
}

}  // namespace

int SignalWakeupFd(int signo) {
  if (signo <= 0 || signo >= NSIG) return -EINVAL;
  std::lock_guard<std::mutex> lock(g_install_mutex);
  if (g_pipe[0] < 0) {
    int status = PipeOpen(g_pipe);
    if (status < 0) return status;
  }
  struct sigaction current {};
  if (::sigaction(signo, nullptr, &current) < 0) return -errno;
  if ((current.sa_flags & SA_SIGINFO) != 0 && current.sa_sigaction == OnSignal) return g_pipe[0];
  struct sigaction wanted {};
  wanted.sa_sigaction = OnSignal;
  wanted.sa_flags = SA_SIGINFO | SA_RESTART;
  sigfillset(&wanted.sa_mask);
  g_previous[signo] = current;
  if (::sigaction(signo, &wanted, nullptr) < 0) return -errno;
  return g_pipe[0];
}

}  // namespace aco
