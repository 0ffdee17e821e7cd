// What the two reactor wrappers (reactor_wrap.cc for loopSync, bridge.cc for loop()) and the
// socket functions (addon.cc) share on the N-API side: argument checks, the Error for a
// reactor that could not be created, and the copy of ready events into JavaScript's array.
#ifndef ASYNCORE_NATIVE_WRAP_COMMON_H_
#define ASYNCORE_NATIVE_WRAP_COMMON_H_

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "backend.h"

namespace aco {

// info[index] as an int32; throws TypeError naming `name` when it is not a number.
int32_t IntArg(const Napi::CallbackInfo& info, size_t index, const char* name);

// `value` as a typed array of `type`: its bytes and element count. False for anything else.
// Inline: send() checks its argument with it on every call.
inline bool TypedArrayOf(napi_env env, napi_value value, napi_typedarray_type type, void** data,
                         size_t* length) {
  // Fails by itself (napi_invalid_arg) for a value that is not a typed array.
  napi_typedarray_type actual = napi_int8_array;
  return napi_get_typedarray_info(env, value, &actual, length, data, nullptr, nullptr) == napi_ok &&
         actual == type;
}

// The Int32Array a wrapper writes ready events to, registered once by JavaScript
// (setReadyArray) instead of passed on every wait: checking a typed-array argument costs
// ~900 instructions (two napi_get_typedarray_info calls, each testing the type against
// every kind in turn), as much as the rest of an iteration's native work. The reference
// keeps the array alive, and with it the memory `slots` points to (napi_get_typedarray_info
// has moved an array stored on V8's heap to a backing store of its own, which never moves).
class ReadyArray {
 public:
  // Registers info[0]; throws TypeError when it is not an Int32Array.
  void Set(const Napi::CallbackInfo& info);
  // Writes ready[0 .. count) as [fd, events] pairs, leaving out the fd `skip` (-1: none), as
  // many as the array holds (none before Set). Returns how many pairs it wrote; *skipped
  // tells whether `skip` was among them.
  size_t Copy(const std::vector<ReadyEvent>& ready, size_t count, int skip = -1,
              bool* skipped = nullptr) const;

 private:
  Napi::ObjectReference array_;
  int32_t* slots_ = nullptr;
  size_t pairs_ = 0;
};

// The Error for a reactor that could not be set up: the cause (-errno) becomes `errno`, and
// the wake-up fd it tried, when there is one (wake_fd >= 0), becomes `fd`.
Napi::Error ReactorCreationError(Napi::Env env, int error, int wake_fd = -1);

}  // namespace aco

#endif  // ASYNCORE_NATIVE_WRAP_COMMON_H_
