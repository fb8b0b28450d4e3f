#!/usr/bin/env bash
# Streaming check (issue: "a 1 GiB file packs with < 300 MiB resident memory"): packs a
# 1 GiB file with the release CLI under /usr/bin/time and fails if the peak resident set
# exceeds the limit. Then verifies and unpacks with M slots deleted, byte for byte.
#   usage: scripts/check-memory.sh [SIZE_MIB=1024] [LIMIT_MIB=300]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. scripts/env.sh
SIZE_MIB="${1:-1024}"
LIMIT_MIB="${2:-300}"
# Without the network commands: fat LTO over libp2p and commonware would dominate the tier.
cargo build --release -p nilstore-cli --no-default-features
BIN="$CARGO_TARGET_DIR/release/nilstore"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/nilstore-mem.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
head -c "$((SIZE_MIB << 20))" /dev/urandom > "$WORK/big.bin"
(umask 077; head -c 32 /dev/urandom > "$WORK/root.key")

peak_kib() { sed -n 's/^\s*Maximum resident set size (kbytes): //p' "$1"; }

/usr/bin/time -v -o "$WORK/pack.time" "$BIN" slab pack "$WORK/big.bin" --out "$WORK/slab" \
    --key-file "$WORK/root.key"
PACK_KIB="$(peak_kib "$WORK/pack.time")"
rm -rf "$WORK/slab/slot-0" "$WORK/slab/slot-5" "$WORK/slab/slot-9" "$WORK/slab/slot-11"
/usr/bin/time -v -o "$WORK/unpack.time" "$BIN" slab unpack "$WORK/slab" --out "$WORK/out" \
    --key-file "$WORK/root.key"
UNPACK_KIB="$(peak_kib "$WORK/unpack.time")"
cmp "$WORK/big.bin" "$WORK/out/big.bin"
printf 'pack %d MiB: peak RSS %d MiB; unpack with 4 of 12 slots lost: peak RSS %d MiB (limit %d MiB)\n' \
    "$SIZE_MIB" $((PACK_KIB / 1024)) $((UNPACK_KIB / 1024)) "$LIMIT_MIB"
grep -E "Elapsed \(wall clock\)" "$WORK/pack.time" "$WORK/unpack.time"
if [ $((PACK_KIB / 1024)) -ge "$LIMIT_MIB" ] || [ $((UNPACK_KIB / 1024)) -ge "$LIMIT_MIB" ]; then
    echo "FAIL: peak resident memory over ${LIMIT_MIB} MiB" >&2
    exit 1
fi
echo "ok: streaming pack and unpack stay under ${LIMIT_MIB} MiB"
