// The N-API surface of the socket layer: argument conversion only.
//
// Conventions, so the TypeScript side can stay fast and exception-free in the hot path:
// - a failed system call returns -errno as a number (src/binding.ts turns it into a
//   SocketError where the API says "throws");
// - a value of the wrong type throws TypeError here, before any syscall.
// The reactor's two wrappers live beside this file: reactor_wrap.cc (loopSync) and
// bridge.cc (loop()'s thread).
#include <napi.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/select.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <string>
#include <unordered_set>

#include "backend.h"
#include "bridge.h"
#include "reactor.h"
#include "reactor_wrap.h"
#include "signal_wakeup.h"
#include "socket.h"
#include "wrap_common.h"

namespace aco {
namespace {

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

Napi::Number Result(Napi::Env env, int64_t value) {
  return Napi::Number::New(env, static_cast<double>(value));
}

// --- Sockets ---------------------------------------------------------------------------

// The fds this environment's JavaScript opened through the addon (sockets, accepted sockets,
// pipes, dups) and has not closed. A worker that ends with sockets open (worker.terminate(),
// process.exit() inside it) runs no JavaScript again, so nothing would close them: the
// environment's cleanup hook closes what is left, and a terminated worker leaves no fd and
// no bound port behind. Used on the environment's own thread only.
class OpenFds {
 public:
  // Registered first in Init, so it runs after the hooks of the thread loops, which join
  // their polling threads before anything here closes an fd they might still watch.
  static OpenFds* Create(Napi::Env env) {
    auto* fds = new OpenFds();
    env.AddCleanupHook([fds] {
      for (int fd : fds->fds_) Close(fd);
      delete fds;
    });
    return fds;
  }

  // A result of a call that may have opened an fd: recorded when it did.
  int64_t Opened(int64_t fd) {
    if (fd >= 0) fds_.insert(static_cast<int>(fd));
    return fd;
  }
  void Closed(int fd) { fds_.erase(fd); }

 private:
  OpenFds() = default;
  std::unordered_set<int> fds_;
};

OpenFds* FdsOf(const Napi::CallbackInfo& info) { return static_cast<OpenFds*>(info.Data()); }

Napi::Value JsSocket(const Napi::CallbackInfo& info) {
  int fd = SocketOpen(IntArg(info, 0, "family"), IntArg(info, 1, "type"));
  return Result(info.Env(), FdsOf(info)->Opened(fd));
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
  if (status == 0) {
    FdsOf(info)->Opened(fds[0]);
    FdsOf(info)->Opened(fds[1]);
  }
  return FdPairResult(info.Env(), status, fds);
}

Napi::Value JsClose(const Napi::CallbackInfo& info) {
  int fd = IntArg(info, 0, "fd");
  // Forgotten whatever close() says: the fd is released even when it reports an error.
  FdsOf(info)->Closed(fd);
  return Result(info.Env(), Close(fd));
}

Napi::Value JsDup(const Napi::CallbackInfo& info) {
  return Result(info.Env(), FdsOf(info)->Opened(Dup(IntArg(info, 0, "fd"))));
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
  FdsOf(info)->Opened(fd);
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

// --- The hot path: a receive and a send per event, without argument conversion ------------
//
// Socket.recv() and Socket.send() run once per event, and converting their arguments cost
// more than the system calls' own user-space share: callgrind counted about 90 instructions
// per integer argument and 340 per buffer, and node-addon-api's CallbackInfo copies six
// argument slots per call. So, as Node's own stream binding passes results through its shared
// `streamBaseState` array, the integers travel in an Int32Array shared with JavaScript
// (`hotPath.args`), the receive slab is registered once (`hotPath.setRecvSlab`) instead of
// passed on every call, and `recv`/`send` are plain napi_callbacks. JavaScript writes the
// slots, then calls; nothing here keeps a slot's value past the call, and every value read
// from a slot is clamped, so whatever JavaScript writes there cannot reach outside the slab.
namespace hot {

// The slots of hotPath.args (exported under these names, so the two sides cannot disagree).
enum Slot : uint8_t { kFd, kLength, kFlags, kOffset, kSlotCount };

// A Uint8Array registered with the native side: its bytes, and a reference that keeps them
// alive while it is registered.
struct Registered {
  uint8_t* data = nullptr;
  size_t length = 0;
  napi_ref ref = nullptr;

  void Release(napi_env env) {
    if (ref != nullptr) napi_delete_reference(env, ref);
    *this = Registered();
  }
};

// Per environment (a worker has its own), as the addon's instance data.
struct State {
  int32_t* args = nullptr;
  napi_ref args_ref = nullptr;
  Registered slab;     // where receives land
  Registered scratch;  // where a receive larger than the slab's room lands first
};

void DeleteState(napi_env env, void* data, void* /*hint*/) {
  auto* state = static_cast<State*>(data);
  if (state->args_ref != nullptr) napi_delete_reference(env, state->args_ref);
  state->slab.Release(env);
  state->scratch.Release(env);
  delete state;
}

State* StateOf(napi_env env) {
  void* data = nullptr;
  napi_get_instance_data(env, &data);
  return static_cast<State*>(data);
}

napi_value Number(napi_env env, int64_t value) {
  napi_value result = nullptr;
  if (value >= INT32_MIN && value <= INT32_MAX) {
    napi_create_int32(env, static_cast<int32_t>(value), &result);
  } else {
    napi_create_double(env, static_cast<double>(value), &result);
  }
  return result;
}

// The call's one argument as a Uint8Array: its value and bytes. Otherwise throws TypeError
// with `what` and returns false.
bool BytesOnlyArg(napi_env env, napi_callback_info info, const char* what, napi_value* value,
                  void** data, size_t* length) {
  size_t argc = 1;
  napi_get_cb_info(env, info, &argc, value, nullptr, nullptr);
  if (argc < 1 || !TypedArrayOf(env, *value, napi_uint8_array, data, length)) {
    napi_throw_type_error(env, nullptr, what);
    return false;
  }
  return true;
}

// The one argument of a setter: a Uint8Array, registered in *target in place of what was.
napi_value Register(napi_env env, napi_callback_info info, Registered* target, const char* what) {
  napi_value value = nullptr;
  void* data = nullptr;
  size_t length = 0;
  if (!BytesOnlyArg(env, info, what, &value, &data, &length)) return nullptr;
  target->Release(env);
  if (napi_create_reference(env, value, 1, &target->ref) != napi_ok) return nullptr;
  target->data = static_cast<uint8_t*>(data);
  target->length = length;
  return nullptr;
}

// setRecvSlab(slab): recv() lands in this Uint8Array from now on.
napi_value SetRecvSlab(napi_env env, napi_callback_info info) {
  return Register(env, info, &StateOf(env)->slab, "the receive slab must be a Uint8Array");
}

// setRecvScratch(scratch): a receive larger than the slab's room lands here first.
napi_value SetRecvScratch(napi_env env, napi_callback_info info) {
  return Register(env, info, &StateOf(env)->scratch, "the receive scratch must be a Uint8Array");
}

// recv() -> bytes received (0 at EOF) or -errno: up to args[kLength] bytes from args[kFd]
// with args[kFlags], for the slab at args[kOffset]. A receive that fits in the slab's room
// (from the offset to its end) lands there. A larger one lands in the scratch buffer (at most
// its length), and what arrived is moved to the slab when it fits after all: JavaScript finds
// the bytes in the slab when the count is at most the room, else at the scratch's start.
// Nothing is ever written outside either buffer, whatever the slots hold.
napi_value Recv(napi_env env, napi_callback_info /*info*/) {
  State* state = StateOf(env);
  const int32_t* args = state->args;
  const Registered& slab = state->slab;
  const Registered& scratch = state->scratch;
  if (slab.data == nullptr || scratch.data == nullptr) return Number(env, -EINVAL);
  size_t offset = std::min(slab.length, static_cast<size_t>(std::max(0, args[kOffset])));
  size_t room = slab.length - offset;
  auto length = static_cast<size_t>(std::max(0, args[kLength]));
  if (length <= room)
    return Number(env, aco::Recv(args[kFd], slab.data + offset, length, args[kFlags]));
  ssize_t got = aco::Recv(args[kFd], scratch.data, std::min(length, scratch.length), args[kFlags]);
  if (got > 0 && static_cast<size_t>(got) <= room) {
    std::memcpy(slab.data + offset, scratch.data, static_cast<size_t>(got));
  }
  return Number(env, got);
}

// send(bytes) -> bytes sent or -errno: `bytes` (a Uint8Array) to args[kFd] with args[kFlags].
napi_value Send(napi_env env, napi_callback_info info) {
  napi_value value = nullptr;
  void* data = nullptr;
  size_t length = 0;
  if (!BytesOnlyArg(env, info, "data must be a Uint8Array or Buffer", &value, &data, &length)) {
    return nullptr;
  }
  const int32_t* args = StateOf(env)->args;
  return Number(env, aco::Send(args[kFd], data, length, args[kFlags]));
}

// { args, FD, LENGTH, FLAGS, OFFSET, setRecvSlab, setRecvScratch, recv, send }
Napi::Object Init(Napi::Env env) {
  auto* state = new State();
  Napi::Int32Array args = Napi::Int32Array::New(env, kSlotCount);
  state->args = args.Data();
  napi_create_reference(env, args, 1, &state->args_ref);
  NAPI_THROW_IF_FAILED(env, napi_set_instance_data(env, state, DeleteState, nullptr),
                       Napi::Object());
  Napi::Object exports = Napi::Object::New(env);
  exports.Set("args", args);
  exports.Set("FD", Napi::Number::New(env, kFd));
  exports.Set("LENGTH", Napi::Number::New(env, kLength));
  exports.Set("FLAGS", Napi::Number::New(env, kFlags));
  exports.Set("OFFSET", Napi::Number::New(env, kOffset));
  auto function = [&](const char* name, napi_callback callback) {
    napi_value fn = nullptr;
    napi_create_function(env, name, NAPI_AUTO_LENGTH, callback, nullptr, &fn);
    exports.Set(name, fn);
  };
  function("setRecvSlab", SetRecvSlab);
  function("setRecvScratch", SetRecvScratch);
  function("recv", Recv);
  function("send", Send);
  return exports;
}

}  // namespace hot

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
  if (status == 0) {
    FdsOf(info)->Opened(fds[0]);
    FdsOf(info)->Opened(fds[1]);
  }
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

// setsockopt(fd, level, option, value) -> 0 or -errno. value is a number (an int option)
// or a Uint8Array whose bytes are the option's raw value (struct linger, struct timeval ...).
Napi::Value JsSetSockOpt(const Napi::CallbackInfo& info) {
  int fd = IntArg(info, 0, "fd");
  int level = IntArg(info, 1, "level");
  int option = IntArg(info, 2, "option");
  if (info[3].IsNumber()) {
    return Result(info.Env(), SetSockOptInt(fd, level, option, IntArg(info, 3, "value")));
  }
  uint8_t* data;
  size_t length;
  BytesArg(info, 3, &data, &length);
  return Result(info.Env(), SetSockOptBytes(fd, level, option, data, length));
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

// getsockoptInto(fd, level, option, buffer) -> bytes the kernel wrote into buffer, or -errno
Napi::Value JsGetSockOptInto(const Napi::CallbackInfo& info) {
  int fd = IntArg(info, 0, "fd");
  int level = IntArg(info, 1, "level");
  int option = IntArg(info, 2, "option");
  uint8_t* data;
  size_t capacity;
  BytesArg(info, 3, &data, &capacity);
  return Result(info.Env(), GetSockOptBytes(fd, level, option, data, capacity));
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
  set("SO_LINGER", SO_LINGER);
  set("SO_BROADCAST", SO_BROADCAST);
  set("SO_RCVLOWAT", SO_RCVLOWAT);
  set("SO_RCVTIMEO", SO_RCVTIMEO);
  set("SO_SNDTIMEO", SO_SNDTIMEO);
  set("IPPROTO_TCP", IPPROTO_TCP);
  set("TCP_NODELAY", TCP_NODELAY);
  set("IPPROTO_IPV6", IPPROTO_IPV6);
  set("IPV6_V6ONLY", IPV6_V6ONLY);
  // Only where the platform has them: an absent name is undefined in JavaScript, as an
  // absent attribute is in Python's socket module.
#ifdef TCP_KEEPIDLE
  set("TCP_KEEPIDLE", TCP_KEEPIDLE);
#elif defined(TCP_KEEPALIVE)
  // macOS names the idle time before the first probe TCP_KEEPALIVE (libuv does the same).
  set("TCP_KEEPIDLE", TCP_KEEPALIVE);
#endif
#ifdef TCP_KEEPINTVL
  set("TCP_KEEPINTVL", TCP_KEEPINTVL);
#endif
#ifdef TCP_KEEPCNT
  set("TCP_KEEPCNT", TCP_KEEPCNT);
#endif
  set("SHUT_RD", SHUT_RD);
  set("SHUT_WR", SHUT_WR);
  set("SHUT_RDWR", SHUT_RDWR);
  set("MSG_PEEK", MSG_PEEK);
  set("MSG_OOB", MSG_OOB);
  set("MSG_DONTWAIT", MSG_DONTWAIT);
  set("MSG_WAITALL", MSG_WAITALL);
  set("POLLIN", POLLIN);
  set("POLLPRI", POLLPRI);
  set("POLLOUT", POLLOUT);
  set("POLLERR", POLLERR);
  set("POLLHUP", POLLHUP);
  set("POLLNVAL", POLLNVAL);
  set("FD_SETSIZE", FD_SETSIZE);
  return c;
}

// getaddrinfo()'s error codes, whose numbers differ between C libraries; the names that a
// platform lacks are left out.
Napi::Object GaiCodes(Napi::Env env) {
  Napi::Object c = Napi::Object::New(env);
  auto set = [&](const char* name, int value) { c.Set(name, Napi::Number::New(env, value)); };
  set("EAI_AGAIN", EAI_AGAIN);
  set("EAI_BADFLAGS", EAI_BADFLAGS);
  set("EAI_FAIL", EAI_FAIL);
  set("EAI_FAMILY", EAI_FAMILY);
  set("EAI_MEMORY", EAI_MEMORY);
  set("EAI_NONAME", EAI_NONAME);
  set("EAI_SERVICE", EAI_SERVICE);
  set("EAI_SOCKTYPE", EAI_SOCKTYPE);
  set("EAI_SYSTEM", EAI_SYSTEM);
#ifdef EAI_NODATA
  set("EAI_NODATA", EAI_NODATA);
#endif
#ifdef EAI_ADDRFAMILY
  set("EAI_ADDRFAMILY", EAI_ADDRFAMILY);
#endif
  return c;
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("constants", Constants(env));
  exports.Set("gaiCodes", GaiCodes(env));
  OpenFds* fds = OpenFds::Create(env);
  exports.Set("socket", Napi::Function::New<JsSocket>(env, "socket", fds));
  exports.Set("socketpair", Napi::Function::New<JsSocketPair>(env, "socketpair", fds));
  exports.Set("close", Napi::Function::New<JsClose>(env, "close", fds));
  exports.Set("dup", Napi::Function::New<JsDup>(env, "dup", fds));
  exports.Set("setNonBlocking", Napi::Function::New<JsSetNonBlocking>(env, "setNonBlocking"));
  exports.Set("bind", Napi::Function::New<JsBind>(env, "bind"));
  exports.Set("listen", Napi::Function::New<JsListen>(env, "listen"));
  exports.Set("accept", Napi::Function::New<JsAccept>(env, "accept", fds));
  exports.Set("connect", Napi::Function::New<JsConnect>(env, "connect"));
  exports.Set("shutdown", Napi::Function::New<JsShutdown>(env, "shutdown"));
  exports.Set("recvInto", Napi::Function::New<JsRecvInto>(env, "recvInto"));
  exports.Set("hotPath", hot::Init(env));
  exports.Set("sendto", Napi::Function::New<JsSendTo>(env, "sendto"));
  exports.Set("recvfromInto", Napi::Function::New<JsRecvFromInto>(env, "recvfromInto"));
  exports.Set("readInto", Napi::Function::New<JsReadInto>(env, "readInto"));
  exports.Set("write", Napi::Function::New<JsWrite>(env, "write"));
  exports.Set("pipe", Napi::Function::New<JsPipe>(env, "pipe", fds));
  exports.Set("setPipeSize", Napi::Function::New<JsSetPipeSize>(env, "setPipeSize"));
  exports.Set("splice", Napi::Function::New<JsSplice>(env, "splice"));
  exports.Set("getsockname", Napi::Function::New<JsGetSockName>(env, "getsockname"));
  exports.Set("getpeername", Napi::Function::New<JsGetPeerName>(env, "getpeername"));
  exports.Set("setsockopt", Napi::Function::New<JsSetSockOpt>(env, "setsockopt"));
  exports.Set("getsockopt", Napi::Function::New<JsGetSockOpt>(env, "getsockopt"));
  exports.Set("getsockoptInto", Napi::Function::New<JsGetSockOptInto>(env, "getsockoptInto"));
  exports.Set("resolve", Napi::Function::New<JsResolve>(env, "resolve"));
  exports.Set("signalWakeupFd", Napi::Function::New<JsSignalWakeupFd>(env, "signalWakeupFd"));
  exports.Set("strerror", Napi::Function::New<JsStrerror>(env, "strerror"));
  exports.Set("availableBackends",
              Napi::Function::New<JsAvailableBackends>(env, "availableBackends"));
  exports.Set("bytesReadable", Napi::Function::New<JsBytesReadable>(env, "bytesReadable"));
  InitReactorWrap(env, exports);
  InitBridge(env, exports);
  return exports;
}

}  // namespace aco

static Napi::Object InitAsyncore(Napi::Env env, Napi::Object exports) {
  return aco::Init(env, exports);
}

NODE_API_MODULE(asyncore, InitAsyncore)
