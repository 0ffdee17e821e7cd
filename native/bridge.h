// The thread bridge behind loop(): a reactor polled on a native thread, its ready events
// handed to JavaScript as one batch per wait through a thread-safe function.
#ifndef ASYNCORE_NATIVE_BRIDGE_H_
#define ASYNCORE_NATIVE_BRIDGE_H_

#include <napi.h>

namespace aco {

// Adds the ThreadLoop class to the addon's exports.
void InitBridge(Napi::Env env, Napi::Object exports);

}  // namespace aco

#endif  // ASYNCORE_NATIVE_BRIDGE_H_
