// What the two reactor wrappers (reactor_wrap.cc for loopSync, bridge.cc for loop()) and the
// socket functions (addon.cc) share on the N-API side: argument checks, the Error for a
// reactor that could not be created, and the copy of ready events into JavaScript's buffer.
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

// info[index] as an Int32Array; throws TypeError when it is anything else.
Napi::Int32Array Int32ArrayArg(const Napi::CallbackInfo& info, size_t index);

// The Error for a reactor that could not be set up: the cause (-errno) becomes `errno`, and
// the wake-up fd it tried, when there is one (wake_fd >= 0), becomes `fd`.
Napi::Error ReactorCreationError(Napi::Env env, int error, int wake_fd = -1);

// Writes ready[0 .. count) to `out` as [fd, events] pairs, leaving out the fd `skip`
// (-1: none), as many as `out` holds. Returns how many pairs it wrote; *skipped tells
// whether `skip` was among them.
size_t CopyReady(const std::vector<ReadyEvent>& ready, size_t count, Napi::Int32Array out,
                 int skip = -1, bool* skipped = nullptr);

}  // namespace aco

#endif  // ASYNCORE_NATIVE_WRAP_COMMON_H_
