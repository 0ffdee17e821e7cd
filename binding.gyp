{
  # The primary build (npm install runs node-gyp). CMakeLists.txt builds the same sources
  # with the same defines through cmake-js.
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
        ["OS=='linux'", { "sources": ["native/backend_epoll.cc"] }]
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
