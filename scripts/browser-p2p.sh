#!/usr/bin/env bash
# The browser libp2p node (net/src/browser.rs) in headless Chromium against a native node:
# builds and starts net/examples/browser_peer.rs, passes its WebRTC-direct and WebSocket
# addresses to net/tests/browser.rs at build time, runs it, and stops the native node.
set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$NILSTORE_ROOT"

# The workspace's test build (scripts/test.sh tier d) builds the example with the same
# features; `cargo build -p nilstore-net --example` would resolve them anew and compile
# libp2p again. After tier d this is a no-op.
nilstore_native_tests_build
addrs="$(mktemp)"
rm -f "$addrs"
fifo="$(mktemp -u)"
mkfifo "$fifo"
"$CARGO_TARGET_DIR/debug/examples/browser_peer" "$addrs" <"$fifo" &
peer=$!
exec 9>"$fifo" # the node runs until this descriptor closes
cleanup() {
    exec 9>&-
    wait "$peer" 2>/dev/null || true
    rm -f "$fifo" "$addrs"
}
trap cleanup EXIT
for _ in $(seq 120); do
    [ -s "$addrs" ] && break
    sleep 0.5
done
[ -s "$addrs" ] || { echo "browser_peer did not start" >&2; exit 1; }
NILSTORE_P2P_WEBRTC="$(grep '/webrtc-direct/' "$addrs" | head -1)"
NILSTORE_P2P_WS="$(grep '/ws/' "$addrs" | head -1)"
export NILSTORE_P2P_WEBRTC NILSTORE_P2P_WS
echo "native peer: $NILSTORE_P2P_WEBRTC"
echo "native peer: $NILSTORE_P2P_WS"
WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-300}" \
    wasm_cargo test -p nilstore-net --target wasm32-unknown-unknown --no-default-features \
    --test browser -- --nocapture
