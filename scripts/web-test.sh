#!/usr/bin/env bash
# The web app in headless Chromium (Playwright driving Debian's Chromium) against a live
# devnet: builds the app (scripts/build-web.sh), starts `nilstore devnet up --web` (one
# process: validator, six providers, a relay, the app's server and faucet), and runs
# playwright/web.test.mjs. Screenshots of every screen go to target/evidence/web/.
set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
# shellcheck source=scripts/devnet.sh
source "$NILSTORE_ROOT/scripts/devnet.sh"
cd "$NILSTORE_ROOT"

# The CLI: built by the workspace's test build (scripts/test.sh tier d); a no-op after it.
[ -n "${NILSTORE_SKIP_BUILD:-}" ] || nilstore_native_tests_build
nil="$CARGO_TARGET_DIR/debug/nilstore"
app="$(bash scripts/build-web.sh | tail -n 1)"

dir="$(mktemp -d)"
cleanup() {
    devnet_down
    rm -rf "$dir"
}
trap cleanup EXIT
RUST_LOG="${RUST_LOG:-info,chain_light::validator::node=warn}" \
    devnet_up "$dir" --providers 6 --relays 1 --api 127.0.0.1:0 --port-base 0 \
    --web "$app" --web-addr 127.0.0.1:0
url="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["web"])' "$DEVNET_JSON")"
echo "web app at $url"

evidence="$NILSTORE_ROOT/target/evidence/web"
rm -rf "$evidence"
mkdir -p "$evidence"
NILSTORE_WEB_URL="$url" NILSTORE_EVIDENCE="$evidence" NILSTORE_TMP="$dir" \
    node --test --test-reporter spec playwright/web.test.mjs || {
    echo "--- devnet log (last 40 lines)" >&2
    tail -40 "$dir/devnet.log" >&2
    exit 1
}
# The CLI reads what the page stored (the page handed over the deal key), and stores and
# reads the same file itself: the page's and the CLI's rates side by side, same devnet.
export NILSTORE_NETWORK="$DEVNET_JSON" NILSTORE_HOME="$dir/cli"
hand="$dir/handover.json"
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$hand" "$1"; }
deal="$(field deal)"
field key | "$nil" deal import-key "$deal" >/dev/null
t0=$(date +%s.%N)
"$nil" get "$deal" "$(field path)" --out "$dir/cli-read.bin" >/dev/null
t1=$(date +%s.%N)
[ "$(sha256sum <"$dir/cli-read.bin" | cut -d' ' -f1)" = "$(field sha256)" ] ||
    { echo "the CLI read the page's deal $deal differently" >&2; exit 1; }
echo "the CLI read the page's deal $deal: identical"
"$nil" put "$dir/$(field path)" >"$dir/cli-put.txt"
t2=$(date +%s.%N)
cli_deal="$(sed -n 's/^deal \([0-9][0-9]*\) .*/\1/p' "$dir/cli-put.txt" | head -n 1)"
"$nil" get "$cli_deal" "$(field path)" --out "$dir/cli-own.bin" >/dev/null
t3=$(date +%s.%N)
cmp -s "$dir/cli-own.bin" "$dir/$(field path)" || { echo "the CLI's own round trip differs" >&2; exit 1; }
python3 - "$(field put_s)" "$(field get_s)" "$t0" "$t1" "$t2" "$t3" <<'PY'
import sys
page_put, page_get, t0, t1, t2, t3 = map(float, sys.argv[1:])
cli_get, cli_put, cli_get_own = t1 - t0, t2 - t1, t3 - t2
mb = 32 * 1.048576
print("32 MiB, same devnet          put s   put MB/s   get s   get MB/s")
print(f"page (worker, Chromium)   {page_put:8.1f} {mb/page_put:10.2f} {page_get:7.1f} {mb/page_get:10.2f}")
print(f"CLI (native)              {cli_put:8.1f} {mb/cli_put:10.2f} {cli_get_own:7.1f} {mb/cli_get_own:10.2f}")
print(f"CLI reading the page's deal                     {cli_get:7.1f} {mb/cli_get:10.2f}")
PY
echo "web app tests passed; screenshots in $evidence"
