#include "wrap_common.h"

#include <string>

namespace aco {

// Runs on every send and receive, so it makes one N-API call: napi_get_value_int32 checks
// the type itself.
int32_t IntArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  int32_t result = 0;
  if (napi_get_value_int32(info.Env(), info[index], &result) != napi_ok) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  }
  return result;
}

Napi::Int32Array Int32ArrayArg(const Napi::CallbackInfo& info, size_t index) {
  Napi::Value value = info[index];
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    throw Napi::TypeError::New(info.Env(), "out must be an Int32Array");
  }
  return value.As<Napi::Int32Array>();
}

Napi::Error ReactorCreationError(Napi::Env env, int error, int wake_fd) {
  Napi::Error failure = Napi::Error::New(env, "cannot create the reactor");
  failure.Set("errno", Napi::Number::New(env, -error));
  if (wake_fd >= 0) failure.Set("fd", Napi::Number::New(env, wake_fd));
  return failure;
}

size_t CopyReady(const std::vector<ReadyEvent>& ready, size_t count, Napi::Int32Array out, int skip,
                 bool* skipped) {
  if (skipped != nullptr) *skipped = false;
  size_t room = out.ElementLength() / 2;
  int32_t* slots = out.Data();
  size_t written = 0;
  for (size_t i = 0; i < count && i < ready.size(); i++) {
    if (ready[i].fd == skip) {
      if (skipped != nullptr) *skipped = true;
      continue;
    }
    if (written == room) {
      if (skip < 0) break;
      continue;  // `skip` may still come
    }
    slots[2 * written] = ready[i].fd;
    slots[2 * written + 1] = ready[i].events;
    written++;
  }
  return written;
}

}  // namespace aco
