{
  # The primary build (npm install runs node-gyp). CMakeLists.txt builds the same sources
  # with the same defines through cmake-js.
  # ASYNCORE_FORCE_FALLBACKS=1 in the environment builds the POSIX fallbacks of
  # native/platform.h on Linux too (no eventfd, accept4, pipe2, MSG_NOSIGNAL, epoll, splice),
  # as .ci/fallbacks does to test them.
  "variables": {
    "force_fallbacks%": "<!(node -p \"process.env.ASYNCORE_FORCE_FALLBACKS === '1' ? 1 : 0\")"
  },
  "targets": [
    {
      "target_name": "asyncore",
      "sources": [
        "native/addon.cc",
        "native/bridge.cc",
        "native/reactor_wrap.cc",
        "native/wrap_common.cc",
        "native/reactor.cc",
        "native/backend.cc",
        "native/backend_select.cc",
        "native/backend_poll.cc",
        "native/signal_wakeup.cc",
        "native/socket.cc"
      ],
      "conditions": [
        ["OS=='linux' and force_fallbacks==0", { "sources": ["native/backend_epoll.cc"] }],
        ["force_fallbacks==1", { "defines": ["ASYNCORE_FORCE_FALLBACKS"] }]
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"
      ],
      "cflags_cc!": ["-std=gnu++17", "-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-fvisibility=hidden"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17"
      }
    }
  ]
}
