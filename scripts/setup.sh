#!/usr/bin/env bash
# Idempotent installer for everything the build and the test tiers need, on Debian 12 with
# rustup (stable), node and npm. Every step checks first and says what it does; a second
# run installs nothing. Facts and routes: ../shared/TOOLCHAIN.md.
#
#   apt      chromium chromium-driver clang lld (+ llvm for llvm-ar if clang did not bring it)
#   rust     wasm32-unknown-unknown + rust-src via rustup (route A, with a timeout);
#            else Debian rustc-web/cargo-web/rust-web-src (route B, build-std)
#   cargo    wasm-bindgen-cli == the wasm-bindgen version in Cargo.lock -> /opt/wasm-bindgen-<v>
#   npm      binaryen (wasm-opt) pinned in tools/package-lock.json -> tools/node_modules
#   npm      playwright-core pinned in playwright/package-lock.json -> playwright/node_modules
#
# Environment: RUSTUP_TIMEOUT_S (default 300) bounds each rustup download;
# NILSTORE_FORCE_ROUTE_B=1 takes route B even where rustup works (to test the fallback).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=env.sh
. "$ROOT/scripts/env.sh"

RUSTUP_TIMEOUT_S="${RUSTUP_TIMEOUT_S:-300}"
APT_PACKAGES=(chromium chromium-driver clang lld)
ROUTE_B_PACKAGES=(rustc-web cargo-web rust-web-src rust-web-llvm lld-22)

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    SUDO=()
fi
export DEBIAN_FRONTEND=noninteractive

apt_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

APT_UPDATED=0
# Installs the packages that are missing; `apt-get update` once, and only when needed.
apt_ensure() {
    local missing=() p
    for p in "$@"; do
        apt_installed "$p" || missing+=("$p")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        say "apt: $* already installed"
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install ${missing[*]} by hand"
    if [ "$APT_UPDATED" -eq 0 ]; then
        say "apt: apt-get update (missing: ${missing[*]})"
        "${SUDO[@]}" apt-get update -q
        APT_UPDATED=1
    fi
    say "apt: installing ${missing[*]}"
    "${SUDO[@]}" apt-get install -y -q "${missing[@]}"
}

# ---- 1. system packages ---------------------------------------------------------------
apt_ensure "${APT_PACKAGES[@]}"
if ! LLVM_AR="$(nilstore_find_llvm_ar)"; then
    say "llvm-ar: not found after clang; installing the llvm package"
    apt_ensure llvm
    LLVM_AR="$(nilstore_find_llvm_ar)" || die "no llvm-ar after installing llvm"
fi
say "llvm-ar: $LLVM_AR (AR_wasm32_unknown_unknown)"

# ---- 2. Rust for wasm32: route A (rustup), else route B (Debian packages) --------------
write_route() { mkdir -p "$NILSTORE_STATE_DIR" && echo "$1" >"$NILSTORE_STATE_DIR/wasm-route"; }

install_route_b() {
    say "route B: Debian rustc-web toolchain (${ROUTE_B_PACKAGES[*]})"
    apt_ensure "${ROUTE_B_PACKAGES[@]}"
}

rustup_has() { # rustup_has target|component NAME
    rustup "$1" list --installed 2>/dev/null | grep -qx "$2"
}

rustup_add() { # rustup_add target|component NAME
    say "rustup: $1 add $2 (timeout ${RUSTUP_TIMEOUT_S}s)"
    timeout "$RUSTUP_TIMEOUT_S" rustup "$1" add "$2"
}

ROUTE=A
if [ "${NILSTORE_FORCE_ROUTE_B:-0}" = 1 ]; then
    say "NILSTORE_FORCE_ROUTE_B=1: skipping rustup for wasm32 (route B)"
    ROUTE=B
elif command -v rustup >/dev/null 2>&1 && rustup_has target wasm32-unknown-unknown; then
    say "rustup: target wasm32-unknown-unknown already installed (route A)"
elif command -v rustup >/dev/null 2>&1 && rustup_add target wasm32-unknown-unknown; then
    say "rustup: target wasm32-unknown-unknown installed (route A)"
else
    say "rustup: could not add wasm32-unknown-unknown; falling back to route B"
    ROUTE=B
fi

if [ "$ROUTE" = B ]; then
    install_route_b
    # Only for wasm32 builds (scripts/env.sh `wasm_cargo` passes it with --config): never in
    # the workspace's .cargo/config.toml, where build-std would hit native builds too.
    mkdir -p "$(dirname "$NILSTORE_ROUTE_B_CONFIG")"
    cat >"$NILSTORE_ROUTE_B_CONFIG.tmp" <<'TOML'
# Written by scripts/setup.sh: route B of TOOLCHAIN.md (Debian rustc-web, std from source).
[build]
rustc = "/usr/bin/rustc"        # else /usr/bin/cargo runs the rustup rustc from PATH
rustdoc = "/usr/bin/rustdoc"    # same for doctests (their std must be this rustc's)
[unstable]
build-std = ["std", "panic_abort"]
[env]
RUSTC_BOOTSTRAP = "1"
TOML
    if ! cmp -s "$NILSTORE_ROUTE_B_CONFIG.tmp" "$NILSTORE_ROUTE_B_CONFIG" 2>/dev/null; then
        say "route B: writing $NILSTORE_ROUTE_B_CONFIG"
        mv "$NILSTORE_ROUTE_B_CONFIG.tmp" "$NILSTORE_ROUTE_B_CONFIG"
    else
        rm -f "$NILSTORE_ROUTE_B_CONFIG.tmp"
        say "route B: $NILSTORE_ROUTE_B_CONFIG up to date"
    fi
fi
if [ "$(cat "$NILSTORE_STATE_DIR/wasm-route" 2>/dev/null)" != "$ROUTE" ]; then
    say "wasm route: recording $ROUTE in $NILSTORE_STATE_DIR/wasm-route"
    write_route "$ROUTE"
fi
export NILSTORE_WASM_ROUTE="$ROUTE"

# rust-src: std sources for threaded wasm builds (build-std with atomics).
if command -v rustup >/dev/null 2>&1 && rustup_has component rust-src; then
    say "rustup: component rust-src already installed"
elif command -v rustup >/dev/null 2>&1 && rustup_add component rust-src; then
    say "rustup: component rust-src installed"
else
    say "rustup: could not add rust-src; installing the route-B std sources instead"
    install_route_b
fi

# ---- 3. wasm-bindgen-cli, exactly the crate's version ------------------------------------
WB_VER="$NILSTORE_WASM_BINDGEN_VERSION"
[ -n "$WB_VER" ] || die "no wasm-bindgen in Cargo.lock"
WB_ROOT="$NILSTORE_WASM_BINDGEN_ROOT"
if [ -x "$WB_ROOT/bin/wasm-bindgen-test-runner" ] &&
    [ "$("$WB_ROOT/bin/wasm-bindgen" --version 2>/dev/null)" = "wasm-bindgen $WB_VER" ]; then
    say "wasm-bindgen-cli $WB_VER already in $WB_ROOT"
else
    say "cargo: installing wasm-bindgen-cli $WB_VER into $WB_ROOT (a few minutes)"
    mkdir -p "$WB_ROOT"
    # Its own temporary target dir: the shared CARGO_TARGET_DIR is for the workspace.
    env -u CARGO_TARGET_DIR cargo install wasm-bindgen-cli --version "$WB_VER" --root "$WB_ROOT"
    [ "$("$WB_ROOT/bin/wasm-bindgen" --version)" = "wasm-bindgen $WB_VER" ] ||
        die "installed wasm-bindgen is not $WB_VER"
fi

# ---- 4. wasm-opt (npm binaryen, pinned in tools/package-lock.json) -----------------------
BINARYEN_WANT="$(node -p "require('$ROOT/tools/package.json').devDependencies.binaryen" 2>/dev/null || true)"
BINARYEN_HAVE="$(node -p "require('$ROOT/tools/node_modules/binaryen/package.json').version" 2>/dev/null || true)"
if [ -n "$BINARYEN_HAVE" ] && [ "$BINARYEN_HAVE" = "$BINARYEN_WANT" ] &&
    [ -x "$ROOT/tools/node_modules/.bin/wasm-opt" ]; then
    say "npm: binaryen $BINARYEN_HAVE already in tools/node_modules"
else
    command -v npm >/dev/null 2>&1 || die "npm not found"
    if [ -f "$ROOT/tools/package-lock.json" ]; then
        say "npm: npm ci in tools/ (binaryen $BINARYEN_WANT)"
        (cd "$ROOT/tools" && npm ci --no-audit --no-fund)
    else
        say "npm: npm install in tools/ (binaryen $BINARYEN_WANT; writes package-lock.json)"
        (cd "$ROOT/tools" && npm install --no-audit --no-fund)
    fi
fi

# ---- 5. Playwright (playwright-core only: it drives Debian's Chromium, no download) -----
PW_WANT="$(node -p "require('$ROOT/playwright/package.json').devDependencies['playwright-core']" 2>/dev/null || true)"
PW_HAVE="$(node -p "require('$ROOT/playwright/node_modules/playwright-core/package.json').version" 2>/dev/null || true)"
if [ -n "$PW_HAVE" ] && [ "$PW_HAVE" = "$PW_WANT" ]; then
    say "npm: playwright-core $PW_HAVE already in playwright/node_modules"
else
    command -v npm >/dev/null 2>&1 || die "npm not found"
    say "npm: npm ci in playwright/ (playwright-core $PW_WANT)"
    (cd "$ROOT/playwright" && npm ci --no-audit --no-fund)
fi

# ---- summary --------------------------------------------------------------------------
say "ready: route $ROUTE; $("$WB_ROOT/bin/wasm-bindgen-test-runner" --version 2>/dev/null || echo 'wasm-bindgen-test-runner ?');" \
    "$("$ROOT/tools/node_modules/.bin/wasm-opt" --version 2>/dev/null || echo 'wasm-opt ?');" \
    "$(chromium --version 2>/dev/null || echo 'chromium ?');" \
    "$("$CHROMEDRIVER" --version 2>/dev/null | cut -d' ' -f1-2 || echo 'chromedriver ?')"
