# shellcheck shell=bash
# NilStore toolchain environment. Source it (`. scripts/env.sh`) after `scripts/setup.sh`
# has installed the tools; it only sets variables and never installs anything.
#
#   PATH                          + /opt/wasm-bindgen-<Cargo.lock version>/bin (the test runner
#                                   must equal the wasm-bindgen crate) + tools/node_modules/.bin
#                                   (wasm-opt from npm binaryen)
#   CC_/AR_wasm32_unknown_unknown clang + llvm-ar: blst's C code on wasm32 (TOOLCHAIN.md)
#   CHROMEDRIVER                  headless Chromium for wasm-bindgen-test-runner
#   CARGO_TARGET_DIR              one build cache outside the clone, reused between checkouts
#   NILSTORE_WASM_ROUTE           A (rustup wasm32 target) or B (Debian rustc-web, build-std);
#                                 on B, `wasm_cargo` runs /usr/bin/cargo with the route-B config

NILSTORE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export NILSTORE_ROOT
export NILSTORE_STATE_DIR="${NILSTORE_STATE_DIR:-$HOME/.cache/nilstore}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nilstore/target}"
# Incremental caches double the target's size (tens of GiB with libp2p) and buy little with
# the optimised dev profile; a clean CI run never reuses them.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# Version of a package in Cargo.lock (first match), e.g. `nilstore_lock_version wasm-bindgen`.
nilstore_lock_version() {
    awk -v want="\"$1\"" '$1 == "name" && $3 == want { getline; gsub(/"/, "", $3); print $3; exit }' \
        "$NILSTORE_ROOT/Cargo.lock"
}

# Where wasm-bindgen-cli <version> lives: /opt when writable (or already there), else ~/.local/opt.
nilstore_wasm_bindgen_root() {
    local ver="$1"
    if [ -x "/opt/wasm-bindgen-$ver/bin/wasm-bindgen" ] || [ -w /opt ]; then
        echo "/opt/wasm-bindgen-$ver"
    else
        echo "$HOME/.local/opt/wasm-bindgen-$ver"
    fi
}

# An llvm-ar for wasm32 archives: the unversioned one, else the newest versioned one.
nilstore_find_llvm_ar() {
    local c
    if command -v llvm-ar >/dev/null 2>&1; then
        command -v llvm-ar
        return 0
    fi
    for c in $(ls -1 /usr/bin/llvm-ar-[0-9]* /usr/local/bin/llvm-ar-[0-9]* 2>/dev/null | sort -V -r) \
        $(ls -1 /usr/lib/llvm-*/bin/llvm-ar 2>/dev/null | sort -V -r); do
        if command -v "$c" >/dev/null 2>&1; then
            command -v "$c"
            return 0
        fi
    done
    return 1
}

NILSTORE_WASM_BINDGEN_VERSION="$(nilstore_lock_version wasm-bindgen)"
export NILSTORE_WASM_BINDGEN_VERSION
NILSTORE_WASM_BINDGEN_ROOT="$(nilstore_wasm_bindgen_root "$NILSTORE_WASM_BINDGEN_VERSION")"
export NILSTORE_WASM_BINDGEN_ROOT

case ":$PATH:" in
    *":$NILSTORE_WASM_BINDGEN_ROOT/bin:"*) ;;
    *) PATH="$NILSTORE_WASM_BINDGEN_ROOT/bin:$PATH" ;;
esac
case ":$PATH:" in
    *":$NILSTORE_ROOT/tools/node_modules/.bin:"*) ;;
    *) PATH="$NILSTORE_ROOT/tools/node_modules/.bin:$PATH" ;;
esac
export PATH

export CC_wasm32_unknown_unknown="${CC_wasm32_unknown_unknown:-clang}"
if [ -z "${AR_wasm32_unknown_unknown:-}" ]; then
    AR_wasm32_unknown_unknown="$(nilstore_find_llvm_ar || echo llvm-ar)"
    export AR_wasm32_unknown_unknown
fi
export CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"

NILSTORE_WASM_ROUTE="$(cat "$NILSTORE_STATE_DIR/wasm-route" 2>/dev/null || echo A)"
export NILSTORE_WASM_ROUTE
export NILSTORE_ROUTE_B_CONFIG="$NILSTORE_STATE_DIR/route-b/config.toml"

# cargo for wasm32 builds: rustup's cargo on route A; Debian's cargo with build-std on B.
wasm_cargo() {
    if [ "$NILSTORE_WASM_ROUTE" = B ]; then
        RUSTC_BOOTSTRAP=1 /usr/bin/cargo --config "$NILSTORE_ROUTE_B_CONFIG" "$@"
    else
        cargo "$@"
    fi
}

# The one native debug build every tier shares. Cargo resolves features per invocation, so
# `-p X` or `--bins` builds (no dev-dependencies) compile libp2p and commonware again with
# other features; every native test command goes through these instead.
#   nilstore_native_tests_build          build every test, bin and example (no-op when fresh)
#   nilstore_native_tests TARGET [ARGS]  run one integration test target by name
nilstore_native_tests_build() {
    cargo test --workspace --exclude nilstore-e2e --no-run
}
nilstore_native_tests() {
    local target="$1"
    shift
    cargo test --workspace --exclude nilstore-e2e --test "$target" "$@"
}
