// The reactor behind loopSync(): JavaScript calls poll() on its own thread, which it blocks.
#ifndef ASYNCORE_NATIVE_REACTOR_WRAP_H_
#define ASYNCORE_NATIVE_REACTOR_WRAP_H_

#include <napi.h>

namespace aco {

// Adds the Reactor class to the addon's exports.
void InitReactorWrap(Napi::Env env, Napi::Object exports);

}  // namespace aco

#endif  // ASYNCORE_NATIVE_REACTOR_WRAP_H_
