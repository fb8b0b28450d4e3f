#!/usr/bin/env bash
# Every test tier, in order, failing fast (CI entry point: .ci/run).
#
#   setup  scripts/setup.sh (idempotent installer)
#   a      rustfmt check
#   b      clippy, native, all targets, -D warnings
#   c      clippy on wasm32, all targets, -D warnings: wasm-core, chain-light, nilstore-net
#          (no default features), nilstore-client (the browser's build) and nilstore-web
#   d      native tests (cargo test --workspace)
#   e      wasm-core tests on wasm32 in headless Chromium (main thread and a Web Worker),
#          the light client, the client's OPFS store and the browser libp2p node there,
#          the browser light client against a devnet validator over fetch
#          (browser-chain.sh), the client on a page against a devnet (browser-client.sh:
#          store and read, resume from OPFS, interop with the CLI, faulty providers, a
#          lying API), the web app driven by Playwright (web-test.sh: a 32 MiB file stored
#          and read back through the page, the CLI reading it, the main thread never
#          blocked over 200 ms, screenshots in target/evidence/web), and scenario 8
#          (parity.sh)
#   f      1 GiB streaming pack/unpack under 300 MiB resident (scripts/check-memory.sh)
#   g      end-to-end scenarios on the real binaries (e2e/, evidence in target/evidence/)
#   h      the README's run command, to the sample round trip (scripts/run.sh --exit)
#   i      fuzz smoke, opt-in with NILSTORE_FUZZ_SECONDS (scripts/fuzz.sh)
#
# The last line is always `N passed, M failed` (tiers).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

START_S=$SECONDS
PASSED=0
FAILED=0
SUMMARY=()

banner() {
    printf '\n'
    printf '=%.0s' {1..88}
    printf '\n== %s\n' "$*"
    printf '=%.0s' {1..88}
    printf '\n'
}

finish() {
    local rc=$?
    local total=$((SECONDS - START_S))
    banner "tiers"
    local line
    for line in "${SUMMARY[@]}"; do
        printf '  %s\n' "$line"
    done
    printf 'total elapsed: %dm %02ds\n' $((total / 60)) $((total % 60))
    printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
    exit "$rc"
}
trap finish EXIT

# run_tier NAME COMMAND...: runs one tier; on failure prints a banner and stops.
run_tier() {
    local name="$1"
    shift
    banner "TIER $name: $*"
    local t0=$SECONDS rc=0
    "$@" || rc=$?
    local dt=$((SECONDS - t0))
    if [ "$rc" -eq 0 ]; then
        PASSED=$((PASSED + 1))
        SUMMARY+=("PASS  $name  (${dt}s)")
        printf '\n-- tier %s passed in %ds\n' "$name" "$dt"
    else
        FAILED=$((FAILED + 1))
        SUMMARY+=("FAIL  $name  (${dt}s, exit $rc)")
        banner "FAILED: TIER $name (exit $rc after ${dt}s) -- stopping"
        exit "$rc"
    fi
}

skip_tier() {
    local name="$1" why="$2"
    banner "TIER $name: skipped ($why)"
    SUMMARY+=("SKIP  $name  ($why)")
}

run_tier "setup" bash "$ROOT/scripts/setup.sh"
# shellcheck source=env.sh
. "$ROOT/scripts/env.sh"
printf 'CARGO_TARGET_DIR=%s  wasm route %s  CC/AR wasm32=%s %s\n' "$CARGO_TARGET_DIR" \
    "$NILSTORE_WASM_ROUTE" "$CC_wasm32_unknown_unknown" "$AR_wasm32_unknown_unknown"

run_tier "a fmt" cargo fmt --all -- --check

run_tier "b clippy native" cargo clippy --workspace --all-targets -- -D warnings

# The pure core, the light client and the networking without their native defaults; the
# client with its (default) network feature, as the browser builds it; the web app.
clippy_wasm32() {
    cargo clippy -p wasm-core -p chain-light -p nilstore-net \
        --target wasm32-unknown-unknown --all-targets --no-default-features -- -D warnings &&
        cargo clippy -p nilstore-client --target wasm32-unknown-unknown --all-targets \
            -- -D warnings &&
        cargo clippy -p nilstore-web --target wasm32-unknown-unknown --all-targets \
            -- -D warnings
}

if [ "$NILSTORE_WASM_ROUTE" = A ]; then
    run_tier "c clippy wasm32" clippy_wasm32
else
    skip_tier "c clippy wasm32" "route B: Debian's rustc-web ships no clippy"
fi

run_tier "d native tests" cargo test --workspace --exclude nilstore-e2e

# wasm-bindgen-test-runner drives Chromium through chromedriver; it reads webdriver.json
# (Chromium binary and flags) from the test's working directory, which cargo sets to the
# crate (wasm-core/webdriver.json). --nocapture prints the [timing] lines of browser.rs.
# Table building in the browser takes seconds: raise the runner's 20 s default.
wasm_tests() {
    WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-600}" \
        wasm_cargo test -p wasm-core --target wasm32-unknown-unknown --no-default-features \
        -- --nocapture &&
        WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-600}" \
            wasm_cargo test -p chain-light --target wasm32-unknown-unknown --no-default-features \
            --test light -- --nocapture &&
        wasm_cargo test -p nilstore-client --target wasm32-unknown-unknown \
            --test browser_store -- --nocapture &&
        bash "$ROOT/scripts/browser-p2p.sh" &&
        bash "$ROOT/scripts/browser-chain.sh" &&
        bash "$ROOT/scripts/browser-client.sh" &&
        bash "$ROOT/scripts/web-test.sh" &&
        bash "$ROOT/scripts/parity.sh"
}
run_tier "e wasm32 tests (Chromium)" wasm_tests

# ---- tier f: streaming memory bound (release CLI, 1 GiB) -------------------------------
run_tier "f 1 GiB pack < 300 MiB RSS" bash "$ROOT/scripts/check-memory.sh" 1024 300

# ---- tier g: end-to-end scenarios (small forms; E2E_FULL=1 for the full ones) ----------
# One devnet at a time: each is a dozen processes on 2 cores.
# Tier d built the binaries (as the integration tests' bins, with the workspace's features;
# the scenarios find them next to their test executable); selecting the scenarios with
# --workspace keeps that feature resolution, so nothing but the e2e crate compiles here.
run_tier "g e2e scenarios" cargo test --workspace --test scenarios -- --test-threads 1

# ---- tier h: the main job, to its sample round trip, on free ports ---------------------
RUN_DIR="$(mktemp -d)"
run_tier "h run.sh smoke" env NILSTORE_BIN_DIR="$CARGO_TARGET_DIR/debug" bash "$ROOT/scripts/run.sh" \
    --dir "$RUN_DIR/devnet" --exit --api 127.0.0.1:0 --port-base 0 --web-addr 127.0.0.1:0
rm -rf "$RUN_DIR"

# ---- tier i: fuzz smoke (opt-in: cargo-fuzz and ASan builds add ~7 min cold) -----------
if [ -n "${NILSTORE_FUZZ_SECONDS:-}" ]; then
    run_tier "i fuzz smoke" bash "$ROOT/scripts/fuzz.sh" "$NILSTORE_FUZZ_SECONDS"
else
    skip_tier "i fuzz smoke" "set NILSTORE_FUZZ_SECONDS=N to run every target N s (scripts/fuzz.sh)"
fi
