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

void ReadyArray::Set(const Napi::CallbackInfo& info) {
  Napi::Value value = info[0];
  size_t length = 0;
  void* data = nullptr;
  if (!TypedArrayOf(info.Env(), value, napi_int32_array, &data, &length)) {
    throw Napi::TypeError::New(info.Env(), "the ready array must be an Int32Array");
  }
  array_ = Napi::Persistent(value.As<Napi::Object>());
  slots_ = static_cast<int32_t*>(data);
  pairs_ = length / 2;
}

Napi::Error ReactorCreationError(Napi::Env env, int error, int wake_fd) {
  Napi::Error failure = Napi::Error::New(env, "cannot create the reactor");
  failure.Set("errno", Napi::Number::New(env, -error));
  if (wake_fd >= 0) failure.Set("fd", Napi::Number::New(env, wake_fd));
  return failure;
}

size_t ReadyArray::Copy(const std::vector<ReadyEvent>& ready, size_t count, int skip,
                        bool* skipped) const {
  if (skipped != nullptr) *skipped = false;
  size_t written = 0;
  for (size_t i = 0; i < count && i < ready.size(); i++) {
    if (ready[i].fd == skip) {
      if (skipped != nullptr) *skipped = true;
      continue;
    }
    if (written == pairs_) {
      if (skip < 0) break;
      continue;  // `skip` may still come
    }
    slots_[2 * written] = ready[i].fd;
    slots_[2 * written + 1] = ready[i].events;
    written++;
  }
  return written;
}

}  // namespace aco
