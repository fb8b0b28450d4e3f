#!/usr/bin/env bash
# End-to-end scenario 8, parity: the same files (wasm-core/tests/golden_slab.rs: a
# plaintext and an encrypted file, RS(2,1)) packed by wasm-core natively and in headless
# Chromium give the same manifest root and leaves. Writes target/evidence/s8_parity.json;
# exits non-zero on any difference. Needs the wasm toolchain (scripts/setup.sh).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=env.sh
. "$ROOT/scripts/env.sh"

t0=$SECONDS
native="$(nilstore_native_tests golden_slab -- --nocapture 2>&1 |
    grep -o 'PARITY .*' | head -n 1 || true)"
browser="$(cd wasm-core && WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-600}" \
    wasm_cargo test -p wasm-core --target wasm32-unknown-unknown --no-default-features \
    --test golden_slab -- --nocapture 2>&1 | grep -o 'PARITY .*' | head -n 1 || true)"
ok=false
if [ -n "$native" ] && [ "$native" = "$browser" ]; then
    ok=true
fi
mkdir -p target/evidence
cat >target/evidence/s8_parity.json <<JSON
{
  "scenario": "s8_parity",
  "ok": $ok,
  "seconds": $((SECONDS - t0)),
  "summary": {
    "native": "${native#PARITY }",
    "chromium": "${browser#PARITY }"
  }
}
JSON
printf 'native:   %s\nchromium: %s\n' "$native" "$browser"
[ "$ok" = true ] || {
    printf 'parity FAILED\n' >&2
    exit 1
}
printf 'parity: identical manifest roots and leaves\n'
