// Python's signal.set_wakeup_fd() for loopSync: a signal handler that writes the signal
// number to a pipe the loop can watch. loopSync keeps the JS thread busy, so Node's own
// process.on('SIGINT') listeners cannot run until it returns; a dispatcher on this pipe
// can end the loop instead. A previous handler is still called afterwards, unless it is a
// one-shot "terminate" handler (Node's default for SIGINT/SIGTERM), which this replaces.
#ifndef ASYNCORE_NATIVE_SIGNAL_WAKEUP_H_
#define ASYNCORE_NATIVE_SIGNAL_WAKEUP_H_

namespace aco {

// Routes `signo` to the wake-up pipe as well; returns the pipe's read end (the same fd on
// every call, non-blocking, close-on-exec) or -errno. Signal dispositions belong to the
// process, so this state is process-wide by nature.
int SignalWakeupFd(int signo);

}  // namespace aco

#endif  // ASYNCORE_NATIVE_SIGNAL_WAKEUP_H_
