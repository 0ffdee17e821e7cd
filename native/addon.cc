// The N-API surface of the socket layer and the reactor: argument conversion only.
//
// Conventions, so the TypeScript side can stay fast and exception-free in the hot path:
// - a failed system call returns -errno as a number (src/binding.ts turns it into a
//   SocketError where the API says "throws");
// - a value of the wrong type throws TypeError here, before any syscall.
// The thread bridge (loop()) lives in bridge.cc; it shares the Reactor.
#include <napi.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/select.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "bridge.h"
#include "reactor.h"
#include "signal_wakeup.h"
#include "socket.h"

namespace aco {
namespace {

// The argument helpers below run on every send and receive, so each makes as few N-API
// calls as it can: napi_get_value_int32 checks the type itself, and one
// napi_get_typedarray_info gives type, length and data at once.
int32_t IntArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  int32_t result = 0;
  if (napi_get_value_int32(info.Env(), info[index], &result) != napi_ok) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  }
  return result;
}

// The bytes of a Uint8Array/Buffer argument (no copy).
void BytesArg(const Napi::CallbackInfo& info, size_t index, uint8_t** data, size_t* length) {
  napi_env env = info.Env();
  napi_value value = info[index];
  bool is_typed_array = false;
  napi_typedarray_type type = napi_int8_array;
  void* bytes = nullptr;
  if (napi_is_typedarray(env, value, &is_typed_array) != napi_ok || !is_typed_array ||
      napi_get_typedarray_info(env, value, &type, length, &bytes, nullptr, nullptr) != napi_ok ||
      type != napi_uint8_array) {
    throw Napi::TypeError::New(info.Env(), "data must be a Uint8Array or Buffer");
  }
  *data = static_cast<uint8_t*>(bytes);
}

// An address argument: a path string (AF_UNIX) or a [numericHost, port] pair.
// Returns 0 or -errno (a malformed address is -EINVAL, as the kernel would say).
int AddressArg(const Napi::CallbackInfo& info, size_t index, SockAddr* out) {
  Napi::Value value = info[index];
  if (value.IsString()) return MakeUnixAddress(value.As<Napi::String>().Utf8Value(), out);
  if (value.IsArray()) {
    auto pair = value.As<Napi::Array>();
    Napi::Value host = pair.Get(0u);
    Napi::Value port = pair.Get(1u);
    if (pair.Length() == 2 && host.IsString() && port.IsNumber()) {
      return MakeInetAddress(AF_UNSPEC, host.As<Napi::String>().Utf8Value(),
                             port.As<Napi::Number>().Int32Value(), out);
    }
  }
  throw Napi::TypeError::New(info.Env(), "address must be [host, port] or a path string");
}

Napi::Value AddressToJs(Napi::Env env, const SockAddr& addr) {
  std::string host;
  int port = 0;
  if (FormatAddress(addr, &host, &port) < 0) return env.Null();
  if (addr.family() == AF_UNIX) return Napi::String::New(env, host);
  Napi::Array pair = Napi::Array::New(env, 2);
  pair.Set(0u, Napi::String::New(env, host));
  pair.Set(1u, Napi::Number::New(env, port));
  return pair;
}

// The Error for a reactor that could not be created: the cause is in `errno`.
Napi::Error ReactorCreationError(Napi::Env env, int error) {
  Napi::Error failure = Napi::Error::New(env, "cannot create the reactor");
  failure.Set("errno", Napi::Number::New(env, -error));
  return failure;
}

Napi::Number Result(Napi::Env env, int64_t value) {
  return Napi::Number::New(env, static_cast<double>(value));
}

// --- Sockets ---------------------------------------------------------------------------

Napi::Value JsSocket(const Napi::CallbackInfo& info) {
  return Result(info.Env(), SocketOpen(IntArg(info, 0, "family"), IntArg(info, 1, "type")));
}

// [fds[0], fds[1]] after a call that filled them, or its -errno.
Napi::Value FdPairResult(Napi::Env env, int status, const int fds[2]) {
  if (status < 0) return Result(env, status);
  Napi::Array pair = Napi::Array::New(env, 2);
  pair.Set(0u, Napi::Number::New(env, fds[0]));
  pair.Set(1u, Napi::Number::New(env, fds[1]));
  return pair;
}

Napi::Value JsSocketPair(const Napi::CallbackInfo& info) {
  int fds[2] = {-1, -1};
  int status = SocketPair(IntArg(info, 0, "family"), IntArg(info, 1, "type"), fds);
  return FdPairResult(info.Env(), status, fds);
}

Napi::Value JsClose(const Napi::CallbackInfo& info) {
  return Result(info.Env(), Close(IntArg(info, 0, "fd")));
}

Napi::Value JsDup(const Napi::CallbackInfo& info) {
  return Result(info.Env(), Dup(IntArg(info, 0, "fd")));
}

Napi::Value JsSetNonBlocking(const Napi::CallbackInfo& info) {
  return Result(info.Env(), SetNonBlocking(IntArg(info, 0, "fd"), info[1].ToBoolean()));
}

Napi::Value JsBind(const Napi::CallbackInfo& info) {
  int fd = IntArg(info, 0, "fd");
  SockAddr addr;
  int status = AddressArg(info, 1, &addr);
  return Result(info.Env(), status < 0 ? status : Bind(fd, addr));
}

Napi::Value JsListen(const Napi::CallbackInfo& info) {
  return Result(info.Env(), Listen(IntArg(info, 0, "fd"), IntArg(info, 1, "backlog")));
}

Napi::Value JsAccept(const Napi::CallbackInfo& info) {
  SockAddr peer;
  int fd = Accept(IntArg(info, 0, "fd"), &peer);
  if (fd < 0) return Result(info.Env(), fd);
  Napi::Array pair = Napi::Array::New(info.Env(), 2);
  pair.Set(0u, Napi::Number::New(info.Env(), fd));
  pair.Set(1u, AddressToJs(info.Env(), peer));
  return pair;
}

Napi::Value JsConnect(const Napi::CallbackInfo& info) {
  int fd = IntArg(info, 0, "fd");
  SockAddr addr;
  int status = AddressArg(info, 1, &addr);
  return Result(info.Env(), status < 0 ? status : Connect(fd, addr));
}

Napi::Value JsShutdown(const Napi::CallbackInfo& info) {
  return Result(info.Env(), Shutdown(IntArg(info, 0, "fd"), IntArg(info, 1, "how")));
}

// send(fd, bytes, flags) -> bytes sent or -errno
Napi::Value JsSend(const Napi::CallbackInfo& info) {
  int fd = IntArg(info, 0, "fd");
  uint8_t* data;
  size_t length;
  BytesArg(info, 1, &data, &length);
  return Result(info.Env(), Send(fd, data, length, IntArg(info, 2, "flags")));
}

// recvInto(fd, buffer, length, flags[, offset]) -> bytes received (0 at EOF) or -errno; they
// land at buffer[offset] (default 0), and never past the buffer's end.
Napi::Value JsRecvInto(const Napi::CallbackInfo& info) {
  int fd = IntArg(info, 0, "fd");
  uint8_t* data;
  size_t capacity;
  BytesArg(info, 1, &data, &capacity);
  size_t offset = 0;
  if (info.Length() > 4)
    offset = std::min(capacity, static_cast<size_t>(std::max(0, IntArg(info, 4, "offset"))));
  size_t length = std::min(capacity - offset, static_cast<size_t>(IntArg(info, 2, "length")));
  return Result(info.Env(), Recv(fd, data + offset, length, IntArg(info, 3, "flags")));
}

Napi::Value JsSendTo(const Napi::CallbackInfo& info) {
  int fd = IntArg(info, 0, "fd");
  uint8_t* data;
  size_t length;
  BytesArg(info, 1, &data, &length);
  int flags = IntArg(info, 2, "flags");
  SockAddr to;
  int status = AddressArg(info, 3, &to);
  return Result(info.Env(), status < 0 ? status : SendTo(fd, data, length, flags, to));
}

// recvfromInto(fd, buffer, length, flags) -> [bytes, address] or -errno
Napi::Value JsRecvFromInto(const Napi::CallbackInfo& info) {
  int fd = IntArg(info, 0, "fd");
  uint8_t* data;
  size_t capacity;
  BytesArg(info, 1, &data, &capacity);
  size_t length = std::min(capacity, static_cast<size_t>(IntArg(info, 2, "length")));
  SockAddr from;
  ssize_t got = RecvFrom(fd, data, length, IntArg(info, 3, "flags"), &from);
  if (got < 0) return Result(info.Env(), got);
  Napi::Array pair = Napi::Array::New(info.Env(), 2);
  pair.Set(0u, Napi::Number::New(info.Env(), static_cast<double>(got)));
  pair.Set(1u, from.length > 0 ? AddressToJs(info.Env(), from) : info.Env().Null());
  return pair;
}

Napi::Value JsReadInto(const Napi::CallbackInfo& info) {
  int fd = IntArg(info, 0, "fd");
  uint8_t* data;
  size_t capacity;
  BytesArg(info, 1, &data, &capacity);
  size_t length = std::min(capacity, static_cast<size_t>(IntArg(info, 2, "length")));
  return Result(info.Env(), Read(fd, data, length));
}

Napi::Value JsWrite(const Napi::CallbackInfo& info) {
  int fd = IntArg(info, 0, "fd");
  uint8_t* data;
  size_t length;
  BytesArg(info, 1, &data, &length);
  return Result(info.Env(), Write(fd, data, length));
}

// pipe() -> [readFd, writeFd] or -errno
Napi::Value JsPipe(const Napi::CallbackInfo& info) {
  int fds[2] = {-1, -1};
  int status = PipeOpen(fds);
  return FdPairResult(info.Env(), status, fds);
}

Napi::Value JsSetPipeSize(const Napi::CallbackInfo& info) {
  return Result(info.Env(), SetPipeSize(IntArg(info, 0, "fd"), IntArg(info, 1, "bytes")));
}

// splice(fdIn, fdOut, length) -> bytes moved (0 at EOF) or -errno
Napi::Value JsSplice(const Napi::CallbackInfo& info) {
  int fd_in = IntArg(info, 0, "fdIn");
  int fd_out = IntArg(info, 1, "fdOut");
  int32_t length = IntArg(info, 2, "length");
  if (length < 0) return Result(info.Env(), -EINVAL);
  return Result(info.Env(), Splice(fd_in, fd_out, static_cast<size_t>(length)));
}

Napi::Value NameOf(const Napi::CallbackInfo& info, int (*get)(int, SockAddr*)) {
  SockAddr addr;
  int status = get(IntArg(info, 0, "fd"), &addr);
  return status < 0 ? Result(info.Env(), status) : AddressToJs(info.Env(), addr);
}

Napi::Value JsGetSockName(const Napi::CallbackInfo& info) { return NameOf(info, GetSockName); }
Napi::Value JsGetPeerName(const Napi::CallbackInfo& info) { return NameOf(info, GetPeerName); }

Napi::Value JsSetSockOpt(const Napi::CallbackInfo& info) {
  return Result(info.Env(), SetSockOptInt(IntArg(info, 0, "fd"), IntArg(info, 1, "level"),
                                          IntArg(info, 2, "option"), IntArg(info, 3, "value")));
}

// getsockopt(fd, level, option) -> [0, value] or [-errno, 0]
Napi::Value JsGetSockOpt(const Napi::CallbackInfo& info) {
  int value = 0;
  int status = GetSockOptInt(IntArg(info, 0, "fd"), IntArg(info, 1, "level"),
                             IntArg(info, 2, "option"), &value);
  Napi::Array pair = Napi::Array::New(info.Env(), 2);
  pair.Set(0u, Napi::Number::New(info.Env(), status));
  pair.Set(1u, Napi::Number::New(info.Env(), value));
  return pair;
}

// resolve(family, type, host, port) -> numeric host string, or
// { gaiCode, errno, message } when getaddrinfo() fails.
Napi::Value JsResolve(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int family = IntArg(info, 0, "family");
  int type = IntArg(info, 1, "type");
  if (!info[2].IsString()) throw Napi::TypeError::New(env, "host must be a string");
  std::string host = info[2].As<Napi::String>().Utf8Value();
  SockAddr addr;
  int sys_errno = 0;
  int status = Resolve(family, type, host, IntArg(info, 3, "port"), &addr, &sys_errno);
  if (status != 0) {
    Napi::Object failure = Napi::Object::New(env);
    failure.Set("gaiCode", status);
    failure.Set("errno", sys_errno);
    failure.Set("message", gai_strerror(status));
    return failure;
  }
  std::string numeric;
  int port = 0;
  FormatAddress(addr, &numeric, &port);
  return Napi::String::New(env, numeric);
}

// strerror(errno) -> the C library's message (strerror_r: strerror is not thread-safe).
Napi::Value JsStrerror(const Napi::CallbackInfo& info) {
  char text[256] = {0};
  int errnum = IntArg(info, 0, "errno");
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
  const char* message = strerror_r(errnum, text, sizeof(text));
#else
  const char* message = strerror_r(errnum, text, sizeof(text)) == 0 ? text : "Unknown error";
#endif
  return Napi::String::New(info.Env(), message);
}

Napi::Value JsSignalWakeupFd(const Napi::CallbackInfo& info) {
  return Result(info.Env(), SignalWakeupFd(IntArg(info, 0, "signal")));
}

// bytesReadable(fd) -> bytes queued for reading, or -errno
Napi::Value JsBytesReadable(const Napi::CallbackInfo& info) {
  return Result(info.Env(), BytesReadable(IntArg(info, 0, "fd")));
}

Napi::Value JsAvailableBackends(const Napi::CallbackInfo& info) {
  const auto& backends = AvailableBackends();
  Napi::Array names = Napi::Array::New(info.Env(), backends.size());
  for (size_t i = 0; i < backends.size(); i++) {
    names.Set(static_cast<uint32_t>(i), Napi::String::New(info.Env(), backends[i].name));
  }
  return names;
}

// --- The reactor, for loopSync -----------------------------------------------------------

class ReactorWrap : public Napi::ObjectWrap<ReactorWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Reactor",
                       {InstanceMethod<&ReactorWrap::SetInterest>("setInterest"),
                        InstanceMethod<&ReactorWrap::Poll>("poll"),
                        InstanceMethod<&ReactorWrap::WatchedCount>("watchedCount"),
                        InstanceMethod<&ReactorWrap::Close>("close"),
                        InstanceAccessor<&ReactorWrap::Backend>("backend")});
  }

  // new Reactor(backendName); throws an Error with `errno` when it cannot be created.
  explicit ReactorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ReactorWrap>(info) {
    if (!info[0].IsString()) throw Napi::TypeError::New(info.Env(), "backend must be a string");
    int error = 0;
    reactor_ = Reactor::Create(info[0].As<Napi::String>().Utf8Value(), &error);
    if (reactor_ == nullptr) throw ReactorCreationError(info.Env(), error);
  }

 private:
  Reactor* Get(Napi::Env env) {
    if (reactor_ == nullptr) throw Napi::Error::New(env, "the reactor is closed");
    return reactor_.get();
  }

  // setInterest(fd, mask) -> 0 or -errno (-ERANGE: the backend cannot hold fd)
  Napi::Value SetInterest(const Napi::CallbackInfo& info) {
    int fd = IntArg(info, 0, "fd");
    auto mask = static_cast<uint32_t>(IntArg(info, 1, "mask"));
    return Result(info.Env(), Get(info.Env())->SetInterest(fd, mask));
  }

  // poll(timeoutMs, out: Int32Array) -> ready count or -errno. The ready fds are written
  // to `out` as [fd, events] pairs; `out` must hold 2 * watchedCount() entries.
  Napi::Value Poll(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Reactor* reactor = Get(env);
    if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "timeout must be a number");
    double timeout = info[0].As<Napi::Number>().DoubleValue();
    if (!info[1].IsTypedArray() ||
        info[1].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
      throw Napi::TypeError::New(env, "out must be an Int32Array");
    }
    auto out = info[1].As<Napi::Int32Array>();
    bool woken = false;
    int count = reactor->Poll(timeout < 0 ? -1 : static_cast<int64_t>(timeout), &woken);
    if (count < 0) return Result(env, count);
    size_t fit = std::min(static_cast<size_t>(count), out.ElementLength() / 2);
    int32_t* slots = out.Data();
    for (size_t i = 0; i < fit; i++) {
      slots[2 * i] = reactor->ready()[i].fd;
      slots[2 * i + 1] = reactor->ready()[i].events;
    }
    return Result(env, static_cast<int64_t>(fit));
  }

  Napi::Value WatchedCount(const Napi::CallbackInfo& info) {
    return Result(info.Env(), Get(info.Env())->WatchedCount());
  }

  // Frees the backend (and its epoll fd) now rather than at garbage collection.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    reactor_.reset();
    return info.Env().Undefined();
  }

  Napi::Value Backend(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), Get(info.Env())->BackendName());
  }

  std::unique_ptr<Reactor> reactor_;
};

Napi::Object Constants(Napi::Env env) {
  Napi::Object c = Napi::Object::New(env);
  auto set = [&](const char* name, int value) { c.Set(name, Napi::Number::New(env, value)); };
  set("AF_INET", AF_INET);
  set("AF_INET6", AF_INET6);
  set("AF_UNIX", AF_UNIX);
  set("AF_UNSPEC", AF_UNSPEC);
  set("SOCK_STREAM", SOCK_STREAM);
  set("SOCK_DGRAM", SOCK_DGRAM);
  set("SOL_SOCKET", SOL_SOCKET);
  set("SO_REUSEADDR", SO_REUSEADDR);
  set("SO_REUSEPORT", SO_REUSEPORT);
  set("SO_ERROR", SO_ERROR);
  set("SO_SNDBUF", SO_SNDBUF);
  set("SO_RCVBUF", SO_RCVBUF);
  set("SO_KEEPALIVE", SO_KEEPALIVE);
  set("SO_TYPE", SO_TYPE);
  set("IPPROTO_TCP", IPPROTO_TCP);
  set("TCP_NODELAY", TCP_NODELAY);
  set("SHUT_RD", SHUT_RD);
  set("SHUT_WR", SHUT_WR);
  set("SHUT_RDWR", SHUT_RDWR);
  set("MSG_PEEK", MSG_PEEK);
  set("MSG_OOB", MSG_OOB);
  set("POLLIN", POLLIN);
  set("POLLPRI", POLLPRI);
  set("POLLOUT", POLLOUT);
  set("POLLERR", POLLERR);
  set("POLLHUP", POLLHUP);
  set("POLLNVAL", POLLNVAL);
  set("FD_SETSIZE", FD_SETSIZE);
  return c;
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("constants", Constants(env));
  exports.Set("socket", Napi::Function::New<JsSocket>(env, "socket"));
  exports.Set("socketpair", Napi::Function::New<JsSocketPair>(env, "socketpair"));
  exports.Set("close", Napi::Function::New<JsClose>(env, "close"));
  exports.Set("dup", Napi::Function::New<JsDup>(env, "dup"));
  exports.Set("setNonBlocking", Napi::Function::New<JsSetNonBlocking>(env, "setNonBlocking"));
  exports.Set("bind", Napi::Function::New<JsBind>(env, "bind"));
  exports.Set("listen", Napi::Function::New<JsListen>(env, "listen"));
  exports.Set("accept", Napi::Function::New<JsAccept>(env, "accept"));
  exports.Set("connect", Napi::Function::New<JsConnect>(env, "connect"));
  exports.Set("shutdown", Napi::Function::New<JsShutdown>(env, "shutdown"));
  exports.Set("send", Napi::Function::New<JsSend>(env, "send"));
  exports.Set("recvInto", Napi::Function::New<JsRecvInto>(env, "recvInto"));
  exports.Set("sendto", Napi::Function::New<JsSendTo>(env, "sendto"));
  exports.Set("recvfromInto", Napi::Function::New<JsRecvFromInto>(env, "recvfromInto"));
  exports.Set("readInto", Napi::Function::New<JsReadInto>(env, "readInto"));
  exports.Set("write", Napi::Function::New<JsWrite>(env, "write"));
  exports.Set("pipe", Napi::Function::New<JsPipe>(env, "pipe"));
  exports.Set("setPipeSize", Napi::Function::New<JsSetPipeSize>(env, "setPipeSize"));
  exports.Set("splice", Napi::Function::New<JsSplice>(env, "splice"));
  exports.Set("getsockname", Napi::Function::New<JsGetSockName>(env, "getsockname"));
  exports.Set("getpeername", Napi::Function::New<JsGetPeerName>(env, "getpeername"));
  exports.Set("setsockopt", Napi::Function::New<JsSetSockOpt>(env, "setsockopt"));
  exports.Set("getsockopt", Napi::Function::New<JsGetSockOpt>(env, "getsockopt"));
  exports.Set("resolve", Napi::Function::New<JsResolve>(env, "resolve"));
  exports.Set("signalWakeupFd", Napi::Function::New<JsSignalWakeupFd>(env, "signalWakeupFd"));
  exports.Set("strerror", Napi::Function::New<JsStrerror>(env, "strerror"));
  exports.Set("availableBackends",
              Napi::Function::New<JsAvailableBackends>(env, "availableBackends"));
  exports.Set("bytesReadable", Napi::Function::New<JsBytesReadable>(env, "bytesReadable"));
  exports.Set("Reactor", ReactorWrap::Define(env));
  InitBridge(env, exports);
  return exports;
}

}  // namespace aco

static Napi::Object InitAsyncore(Napi::Env env, Napi::Object exports) {
  return aco::Init(env, exports);
}

NODE_API_MODULE(asyncore, InitAsyncore)
