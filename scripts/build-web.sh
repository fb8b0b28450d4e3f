#!/usr/bin/env bash
# Builds the web app (web/: the Leptos page and its worker, one Wasm module) into a static
# directory any web server can serve (docs/operators.md lists the headers):
#
#   scripts/build-web.sh [OUT]      default OUT: $CARGO_TARGET_DIR/web-dist
#
# cargo (wasm32, the optimised dev profile) -> wasm-bindgen --target web -> wasm-opt -> the
# files of web/static. No download at build time: the tools come from scripts/setup.sh.
# Prints OUT's path as its last line.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=env.sh
. "$ROOT/scripts/env.sh"
OUT="${1:-$CARGO_TARGET_DIR/web-dist}"

t0=$SECONDS
wasm_cargo build -p nilstore-web --lib --target wasm32-unknown-unknown >&2
WASM="$CARGO_TARGET_DIR/wasm32-unknown-unknown/debug/nilstore_web.wasm"
[ -f "$WASM" ] || { echo "build-web: $WASM missing" >&2; exit 1; }

# wasm-bindgen and wasm-opt take a minute or two: skip them when nothing changed.
ID="$(cat "$WASM" "$ROOT"/web/static/* "$0" | sha256sum | cut -d' ' -f1)"
if [ -f "$OUT/.build-id" ] && [ "$(cat "$OUT/.build-id")" = "$ID" ]; then
    echo "build-web: $OUT is up to date" >&2
    echo "$OUT"
    exit 0
fi

STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
wasm-bindgen --target web --no-typescript --out-dir "$STAGE" "$WASM" >&2
# -O2, not -Oz: the module carries the prover, whose speed matters more than bytes.
wasm-opt -O2 --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-reference-types --enable-multivalue \
    "$STAGE/nilstore_web_bg.wasm" -o "$STAGE/nilstore_web_bg.opt.wasm" >&2
mv "$STAGE/nilstore_web_bg.opt.wasm" "$STAGE/nilstore_web_bg.wasm"
cp "$ROOT"/web/static/* "$STAGE/"
echo "$ID" >"$STAGE/.build-id"

mkdir -p "$OUT"
rm -rf "$OUT.new"
cp -r "$STAGE" "$OUT.new"
rm -rf "$OUT"
mv "$OUT.new" "$OUT"
chmod -R a+rX "$OUT"
size=$(stat -c %s "$OUT/nilstore_web_bg.wasm")
gz=$(gzip -9 -c "$OUT/nilstore_web_bg.wasm" | wc -c)
printf 'build-web: %s in %ds (wasm %d KiB, %d KiB gzipped)\n' "$OUT" $((SECONDS - t0)) \
    $((size / 1024)) $((gz / 1024)) >&2
echo "$OUT"
