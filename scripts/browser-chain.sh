#!/usr/bin/env bash
# The browser light client (nilstore-net's ChainView over FetchApi) in headless Chromium
# against a devnet validator: starts `nilstore devnet up` (validator only), passes its API
# URL, genesis document and a free funded dev key to net/tests/chain.rs at build time, runs
# it, and stops the devnet.
set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
# shellcheck source=scripts/devnet.sh
source "$NILSTORE_ROOT/scripts/devnet.sh"
cd "$NILSTORE_ROOT"

# Built by the workspace's test build (scripts/test.sh tier d); a no-op after it.
[ -n "${NILSTORE_SKIP_BUILD:-}" ] || nilstore_native_tests_build
dir="$(mktemp -d)"
cleanup() {
    devnet_down
    rm -rf "$dir"
}
trap cleanup EXIT
devnet_up "$dir" --providers 0 --relays 0 --api 127.0.0.1:0 --port-base 0
# The test syncs to a certified header above genesis: wait for the first block.
python3 - "$DEVNET_JSON" <<'PY'
import json, sys, time, urllib.request
api = json.load(open(sys.argv[1]))["api"].rstrip("/")
for _ in range(240):
    try:
        if json.load(urllib.request.urlopen(api + "/status", timeout=5))["height"] >= 1:
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.5)
sys.exit("the devnet validator made no block in 120 s")
PY
eval "$(python3 - "$DEVNET_JSON" <<'PY'
import json, shlex, sys
info = json.load(open(sys.argv[1]))
keys = json.load(open(info["dev_keys"]))
free = [k for i, k in enumerate(keys) if i not in info["reserved_dev_accounts"]]
print("export NILSTORE_CHAIN_API=" + shlex.quote(info["api"]))
print("export NILSTORE_CHAIN_GENESIS=" + shlex.quote(open(info["genesis"]).read()))
print("export NILSTORE_CHAIN_KEY=" + shlex.quote(free[0]["secret"]))
PY
)"
echo "validator API: $NILSTORE_CHAIN_API"
WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-300}" \
    wasm_cargo test -p nilstore-net --target wasm32-unknown-unknown --no-default-features \
    --test chain -- --nocapture
