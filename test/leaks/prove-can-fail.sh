#!/usr/bin/env bash
# Shows that the LeakSanitizer scripts can fail: for each script, a scratch copy of native/
# gets one deliberate leak on the path that script exercises, is built with the sanitizers,
# and the script must then exit with LeakSanitizer's code and a report that names native/.
# Not part of CI (four sanitizer builds); run it after changing the scripts or the native
# paths they cover. Nothing in the checkout is modified.
#
#   test/leaks/prove-can-fail.sh            every variant
#   test/leaks/prove-can-fail.sh accept     some of them (context, accept, teardown, finalizer)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
if [ -f /usr/include/node/node.h ]; then export npm_config_nodedir=/usr; fi

# variant | file | exact text to find | replacement | script that must catch it
variants=(
  "context|bridge.cc|[](Napi::Env, void*, Context* ctx) { delete ctx; }|[](Napi::Env, void*, Context* ctx) { (void)ctx; }|bridge"
  "accept|addon.cc|  SockAddr peer;
  int fd = Accept(|  SockAddr& peer = *new SockAddr;
  int fd = Accept(|connections"
  "teardown|bridge.cc|    core_.reset();|    if (from_cleanup_hook) new std::shared_ptr<LoopCore>(core_);
    core_.reset();|workers"
  "finalizer|addon.cc|  explicit ReactorWrap(const Napi::CallbackInfo& info)|  ~ReactorWrap() override { (void)reactor_.release(); }
  explicit ReactorWrap(const Napi::CallbackInfo& info)|reactor-gc"
)

flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
status=0
for entry in "${variants[@]}"; do
  IFS='|' read -r -d '' name file find replace script < <(printf '%s\0' "$entry") || true
  script=${script%$'\n'}
  [ $# -eq 0 ] || [[ " $* " == *" $name "* ]] || continue
  copy="$scratch/$name"
  mkdir -p "$copy"
  cp -r native CMakeLists.txt package.json "$copy/"
  ln -s "$root/node_modules" "$copy/node_modules"
  FIND=$find REPLACE=$replace node -e '
    const fs = require("fs");
    const path = process.argv[1];
    const text = fs.readFileSync(path, "utf8");
    if (text.split(process.env.FIND).length !== 2) {
      console.error(`prove: the text to replace occurs ${text.split(process.env.FIND).length - 1} times in ${path}`);
      process.exit(2);
    }
    fs.writeFileSync(path, text.replace(process.env.FIND, process.env.REPLACE));
  ' "$copy/native/$file"
  (cd "$copy" && npx --no-install cmake-js rebuild -O build \
    --CDCMAKE_CXX_FLAGS_RELEASE="$flags" --CDCMAKE_SHARED_LINKER_FLAGS_RELEASE="$flags" >build.log 2>&1) ||
    { tail -20 "$copy/build.log"; exit 1; }
  code=0
  out=$(ASYNCORE_ADDON="$copy/build/Release/asyncore.node" \
    LD_PRELOAD="$(gcc -print-file-name=libasan.so)" \
    ASAN_OPTIONS="detect_leaks=1:exitcode=86" UBSAN_OPTIONS="halt_on_error=1" \
    timeout 300 node "test/leaks/$script.mjs" 2>&1) || code=$?
  if [ "$code" -eq 86 ] && grep -q "ERROR: LeakSanitizer" <<<"$out" && grep -q "native/$file" <<<"$out"; then
    echo "prove: leak '$name' in native/$file caught by $script.mjs (exit $code):"
    grep -m1 "ERROR: LeakSanitizer" <<<"$out"
    grep -m1 -E "^(Direct|Indirect) leak" <<<"$out"
    grep -m1 "native/$file" <<<"$out"
  else
    echo "$out" | tail -30
    echo "prove: leak '$name' in native/$file NOT caught by $script.mjs (exit $code)"
    status=1
  fi
done
exit "$status"
