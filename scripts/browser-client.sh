#!/usr/bin/env bash
# The client (nilstore-client) in headless Chromium against a live devnet: starts
# `nilstore devnet up` with six providers and a relay, passes devnet.json, the genesis
# document and a free funded dev key to client/tests/browser_devnet.rs at build time, runs
# it (a deal, an 8 MiB put over the page's libp2p node, a verified get, a range read, wrong
# keys refused), and stops the devnet.
set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$NILSTORE_ROOT"

# Built by the workspace's test build (scripts/test.sh tier d); a no-op after it.
[ -n "${NILSTORE_SKIP_BUILD:-}" ] || nilstore_native_tests_build
dir="$(mktemp -d)"
"$CARGO_TARGET_DIR/debug/nilstore" devnet up --dir "$dir" --providers 6 --relays 1 \
    --api 127.0.0.1:0 --port-base 0 \
    >"$dir/devnet.log" 2>&1 &
devnet=$!
cleanup() {
    kill "$devnet" 2>/dev/null || true
    wait "$devnet" 2>/dev/null || true
    if [ -n "${NILSTORE_KEEP_DEVNET_LOG:-}" ]; then
        cp "$dir/devnet.log" "$NILSTORE_KEEP_DEVNET_LOG" || true
    fi
    rm -rf "$dir"
}
trap cleanup EXIT
# devnet.json appears once every daemon is registered on chain.
for _ in $(seq 480); do
    [ -s "$dir/devnet.json" ] && break
    kill -0 "$devnet" 2>/dev/null || break
    sleep 0.5
done
[ -s "$dir/devnet.json" ] || { tail -50 "$dir/devnet.log" >&2; echo "the devnet did not start" >&2; exit 1; }
eval "$(python3 - "$dir/devnet.json" <<'PY'
import json, shlex, sys
info = json.load(open(sys.argv[1]))
keys = json.load(open(info["dev_keys"]))
free = [k for i, k in enumerate(keys) if i not in info["reserved_dev_accounts"]]
print("export NILSTORE_DEVNET_JSON=" + shlex.quote(json.dumps(info)))
print("export NILSTORE_CHAIN_GENESIS=" + shlex.quote(open(info["genesis"]).read()))
print("export NILSTORE_CHAIN_KEY=" + shlex.quote(free[0]["secret"]))
PY
)"
echo "devnet: $(python3 -c 'import json,os; i=json.loads(os.environ["NILSTORE_DEVNET_JSON"]); print(i["api"], len(i["providers"]), "providers", len(i["relays"]), "relays")')"
WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-900}" \
    wasm_cargo test -p nilstore-client --target wasm32-unknown-unknown \
    --test browser_devnet -- --nocapture
