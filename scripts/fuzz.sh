#!/usr/bin/env bash
# Fuzz smoke test: runs every cargo-fuzz target in fuzz/ for SECONDS each (default 10).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      e.g. scripts/fuzz.sh 60 aead points
#
# Targets (fuzz/fuzz_targets/, one per decoder of external data):
#   points               G1/G2 compressed points, Fr scalars (round trips)
#   triple_proof         TripleProof::from_bytes (round trip), verify / verify_batch
#   file_table           FileTable::decode (encode/decode round trip)
#   kzg_vector           the EIP-4844 vector runner on arbitrary YAML
#   aead                 Decryptor in arbitrary chunking vs one-shot decrypt, tampering
#   packing_and_witness  packing::unpack, FixedBaseMsm::from_cache_bytes
#   chain_decoders       SignedTx (binary and POST /tx JSON), Block, FraudEvidence,
#                        Attestation, StateProof::verify (canonical round trips)
#   net_messages         frames, then every protocol's request and response under its
#                        size limit (canonical round trips)
#   state_machine        blocks of arbitrary transactions (any message, field values and
#                        fee) on a chain: no panic, supply conserved, no balance above it
#   sync_messages        validators' block sync messages, their blocks and certificates;
#                        the serving side's answers always decode on the receiving side
#   light_client_json    the light client (ChainView) against an API answering forged JSON
#                        mixed with genuine proofs: the trusted header never moves, every
#                        read that succeeds is the genesis state's record
#   slab_json            opening a slab from outside files (slab.json, manifest, metadata)
#   upload_shard         the provider's check of an uploaded shard (prepare_upload and the
#                        batched KZG check): genuine shards pass, tampered ones that pass
#                        match their leaves by the naive per-blob commitment
#
# What it does, idempotently:
#   1. installs cargo-fuzz if missing (`cargo install cargo-fuzz --locked`);
#   2. writes a few seeds into fuzz/corpus/<target>/ (seed-* files, regenerated each run;
#      the corpus and fuzz/artifacts/ are git-ignored by fuzz/.gitignore);
#   3. builds all targets once, then runs each with -max_total_time=SECONDS.
# Exits non-zero if any target crashes (panic, failed assertion, ASan report, timeout,
# out of memory), prints the panic or sanitizer report, the crashing input in hex, and the
# exact `cargo fuzz run ... <target> <artifact>` command that replays it.
#
# Toolchain: cargo-fuzz passes nightly-only flags (-Zsanitizer=address, -Cpasses=...).
# The pinned stable toolchain accepts them with RUSTC_BOOTSTRAP=1, set only for the
# `cargo fuzz` commands here; rustup's stable rust-std ships the ASan runtime
# (librustc-stable_rt.asan.a), so AddressSanitizer works. If a toolchain lacks it, run
# with FUZZ_SANITIZER=none (panics and assertions are still caught, memory errors in the
# C code of blst/c-kzg are not).
#
# Builds go to "${CARGO_TARGET_DIR:-$HOME/.cache/nilstore/target}/fuzz" (overridable with
# FUZZ_TARGET_DIR): sanitizer and coverage flags would otherwise invalidate the main cache.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SECONDS_PER_TARGET="${1:-10}"
shift || true
ALL_TARGETS=(points triple_proof file_table kzg_vector aead packing_and_witness chain_decoders
    net_messages state_machine sync_messages light_client_json slab_json upload_shard)
if [ "$#" -gt 0 ]; then
    TARGETS=("$@")
else
    TARGETS=("${ALL_TARGETS[@]}")
fi
case "$SECONDS_PER_TARGET" in
    '' | *[!0-9]*)
        echo "usage: $0 [SECONDS] [TARGET...]" >&2
        exit 2
        ;;
esac

FUZZ_TARGET_DIR="${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/nilstore/target}/fuzz}"
FUZZ_SANITIZER="${FUZZ_SANITIZER:-address}"
# A single input slower than this is reported as a hang (crash).
FUZZ_TIMEOUT_S="${FUZZ_TIMEOUT_S:-60}"
# libFuzzer's memory ceiling: an input that makes the code allocate more is a crash.
FUZZ_RSS_LIMIT_MB="${FUZZ_RSS_LIMIT_MB:-2048}"
LOG_DIR="$FUZZ_TARGET_DIR/logs"
CORPUS_DIR="$ROOT/fuzz/corpus"
ARTIFACT_DIR="$ROOT/fuzz/artifacts"
VECTORS="${NILSTORE_VECTORS:-$ROOT/../shared/vectors/eip4844}"

# Flags common to `cargo fuzz build` and `cargo fuzz run`: same flags, same binaries.
# --debug-assertions: overflow checks and std's UB checks (e.g. slice::from_raw_parts).
FUZZ_FLAGS=(--release --debug-assertions --sanitizer "$FUZZ_SANITIZER" --target-dir "$FUZZ_TARGET_DIR")

# cargo-fuzz instruments Rust only. With clang, the C of blst (point decoding, subgroup
# checks) and c-kzg is built with libFuzzer's coverage (and the sanitizer) too, so the
# fuzzer sees its branches: about 1.5x the coverage on `points`. FUZZ_INSTRUMENT_C=0 skips
# it. These variables must be the same for build and run, or blst is rebuilt.
FUZZ_ENV=(RUSTC_BOOTSTRAP=1)
if [ "${FUZZ_INSTRUMENT_C:-1}" = 1 ] && command -v clang >/dev/null 2>&1; then
    host_triple="$(rustc -vV | sed -n 's/^host: //p' | tr '.-' '__')"
    c_flags="-fsanitize=fuzzer-no-link"
    [ "$FUZZ_SANITIZER" = none ] || c_flags="$c_flags -fsanitize=$FUZZ_SANITIZER"
    FUZZ_ENV+=("CC_$host_triple=clang" "CFLAGS_$host_triple=$c_flags")
fi

cargo_fuzz() {
    env "${FUZZ_ENV[@]}" cargo fuzz "$@"
}

# ---------------------------------------------------------------------------------------
# 1. cargo-fuzz
t0=$SECONDS
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked || cargo install cargo-fuzz
fi
echo "== $(cargo fuzz --version) (install step $((SECONDS - t0))s)"

# ---------------------------------------------------------------------------------------
# 2. Seeds. `seed <target> <name> <hex>` writes fuzz/corpus/<target>/seed-<name>.
unhex() { # hex string -> bytes on stdout (bash printf, no xxd needed)
    local hex="$1" i
    for ((i = 0; i < ${#hex}; i += 2)); do
        # shellcheck disable=SC2059 # the format is the escape we build
        printf "\\x${hex:i:2}"
    done
}
tohex() { # stdin -> lowercase hex on one line
    od -An -v -tx1 | tr -d ' \n'
}
seed() {
    mkdir -p "$CORPUS_DIR/$1"
    unhex "$3" >"$CORPUS_DIR/$1/seed-$2"
}
# `seed_text <target> <name> <selector hex> <file>`: one selector byte, then a text file.
seed_text() {
    mkdir -p "$CORPUS_DIR/$1"
    {
        unhex "$3"
        cat "$4"
    } >"$CORPUS_DIR/$1/seed-$2"
}
zeros() { # hex of N zero bytes
    printf '%0*d' $(($1 * 2)) 0
}
be() { # hex of VALUE as a big-endian integer of BYTES bytes
    printf '%0*x' $(($2 * 2)) "$1"
}

# Compressed generators (ZCash serialisation) and the identity.
G1_GEN=97f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb
G2_GEN=93e02b6052719f607dacd3a088274f65596bd0d09920b61ab5da61bbdc7f5049334cf11213945d57e5ac7d055d042b7e024aa2b2f08f0a91260805272dc51051c6e47ad4fa403b02b4510b647ae3d1770bac0326a805bbefd48056c8c121bdb8
G1_INF="c0$(zeros 47)"
G2_INF="c0$(zeros 95)"
# r - 1, the largest canonical scalar.
FR_MAX=73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000000

write_seeds() {
    seed points g1 "$G1_GEN"
    seed points g1-inf "$G1_INF"
    seed points g2 "$G2_GEN"
    seed points g2-inf "$G2_INF"
    seed points fr-max "$FR_MAX"

    # root ‖ mdu ‖ mdu_root ‖ manifest_proof ‖ leaf_index ‖ commitment ‖ blake3 ‖ path_len ‖
    # path ‖ z ‖ y ‖ blob_proof (wasm_core::proof::TripleProof::to_bytes).
    local path2
    path2="$(zeros 32)$(printf '11%.0s' {1..32})"
    seed triple_proof gen "$G1_GEN$(be 0 4)$(zeros 32)$G1_GEN$(be 0 4)$G1_GEN$(zeros 32)00$(zeros 32)$(zeros 32)$G1_GEN"
    seed triple_proof path2 "$G1_GEN$(be 3 4)$(zeros 32)$G1_INF$(be 2 4)$G1_GEN$(zeros 32)02$path2$FR_MAX$(be 1 32)$G1_INF"

    # Header: "NILF" ‖ version 1 ‖ record size ‖ count ‖ reserved; records of 320 bytes:
    # start ‖ len ‖ flags ‖ path_len ‖ mtime ‖ blake3 ‖ path[256] ‖ reserved[4].
    local magic=4e494c46 rec_len=320
    record() { # start len flags path
        local path_hex
        path_hex="$(printf '%s' "$4" | tohex)"
        printf '%s' "$(be "$1" 8)$(be "$2" 8)$(be "$3" 2)$(be ${#4} 2)$(be 1700000000 8)$(printf 'ab%.0s' {1..32})$path_hex$(zeros $((256 - ${#4})))$(zeros 4)"
    }
    seed file_table empty "$magic$(be 1 2)$(be $rec_len 2)$(be 0 4)$(zeros 4)"
    seed file_table two "$magic$(be 1 2)$(be $rec_len 2)$(be 2 4)$(zeros 4)$(record 0 10 0 a.txt)$(record 10 5 $((1 << 15)) dir/b.bin)$(zeros 64)"

    local i f
    for i in 0 1 2 3 4 5; do
        case $i in
            0) f=blob_to_kzg_commitment ;;
            1) f=compute_kzg_proof ;;
            2) f=compute_blob_kzg_proof ;;
            3) f=verify_kzg_proof ;;
            4) f=verify_blob_kzg_proof ;;
            5) f=verify_blob_kzg_proof_batch ;;
        esac
        # Small hand-made cases (full blobs are 256 KiB of hex: too big to mutate well).
        mkdir -p "$CORPUS_DIR/kzg_vector"
        {
            unhex "$(be $i 1)"
            printf 'input:\n  blob: "0x%s"\n  blobs: ["0x00"]\n  z: "0x%s"\n  y: "0x%s"\n' \
                "$(zeros 62)" "$(zeros 32)" "$FR_MAX"
            printf '  commitment: "0x%s"\n  commitments: ["0x%s"]\n' "$G1_INF" "$G1_GEN"
            printf '  proof: "0x%s"\n  proofs: ["0x%s"]\noutput: null\n' "$G1_INF" "$G1_GEN"
        } >"$CORPUS_DIR/kzg_vector/seed-$f"
    done
    # Real vectors from the shared set (the small ones).
    if [ -d "$VECTORS" ]; then
        local v n=0
        for v in "$VECTORS"/verify_kzg_proof/kzg-mainnet/*/data.yaml; do
            [ -f "$v" ] || continue
            n=$((n + 1))
            [ $n -le 8 ] || break
            seed_text kzg_vector "vector-$(basename "$(dirname "$v")")" 03 "$v"
        done
        v="$VECTORS/verify_blob_kzg_proof_batch/kzg-mainnet/verify_blob_kzg_proof_batch_case_0/data.yaml"
        [ -f "$v" ] && seed_text kzg_vector vector-batch-empty 05 "$v"
    fi

    # Raw mode: a valid header then junk; sealed mode: 1 chunk, 1 chunk - 1 byte, 2 chunks
    # cut, flipped and extended (see fuzz/fuzz_targets/aead.rs for the layout).
    local nonce plan
    nonce="$(printf '5a%.0s' {1..19})"
    plan="$(zeros 33)"
    seed aead raw "00${plan}4e494c4501${nonce}$(printf 'ee%.0s' {1..40})"
    seed aead sealed-1 "0101$(be 0 2)${nonce}00$(be 0 4)00${plan}68656c6c6f"
    seed aead sealed-short "0101ffff${nonce}00$(be 0 4)00${plan}776f726c64"
    seed aead sealed-cut "0102$(be 0 2)${nonce}01$(be 65560 4)00${plan}00"
    seed aead sealed-flip "0102$(be 7 2)${nonce}02$(be 65600 4)80${plan}01"
    seed aead sealed-extend "0100$(be 0 2)${nonce}03$(be 3 4)00${plan}"
    seed aead split "0101$(be 0 2)${nonce}00$(be 0 4)0003$(be 4 4)$(be 24 4)$(be 65560 4)$(zeros 20)abcdef"

    # Modes 0 unpack: len ‖ two packed elements; 4 cache: "NILMSM01" ‖ window 12 ‖ 22 windows ‖
    # 0 bases ‖ fingerprint 0 ‖ BLAKE3 of the empty body; 7 round trip: 2 bases, 12 bits.
    seed packing_and_witness unpack "00$(be 40 8)00$(printf '61%.0s' {1..31})00$(printf '62%.0s' {1..31})"
    seed packing_and_witness cache "044e494c4d534d30310c00000016000000$(zeros 4)$(zeros 32)af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    seed packing_and_witness round-trip "07010a$FR_MAX$(be 1 1)$(be 90 4)04"

    # Selector (protocol index << 1 | response), then a postcard message: a Fetch request
    # for deal 7, slot 1, MDU 2, a range of row 3 (offset 0, 64 bytes); then the same as a
    # frame (4-byte big-endian length first).
    seed net_messages fetch-range "0207010201030040"
    seed net_messages fetch-frame "020000000707010201030040"
    # Records [head][u16 BE length][postcard Msg]: Withdraw {} (variant 18) from bob and
    # ExitProvider {} (variant 3) from alice, each at the minimum fee, each its own block.
    seed state_machine withdraw "85000112"
    seed state_machine exit-provider "84000103""85000112"

    # Selector 0: Want { from: 5 }; Have with one (non-)block and no certificate. Selector
    # odd: the serving side, block sizes of 3 bytes each (x4).
    seed sync_messages want "000005"
    seed sync_messages have "0001010100""00"
    seed sync_messages serve "03""000100""100000""000001"
    # Answers separated by 0xFF: empty = genuine. All genuine; a status claiming height 2
    # with headers lacking certificates; a 404 status; a proof naming another key.
    seed light_client_json genuine "ffffffffffff"
    seed light_client_json ahead "$(printf '{"height":2}' | tohex)ff$(printf '{"header":null,"finalization":null}' | tohex)ff"
    seed light_client_json status-404 "feff"
    seed light_client_json other-key "ff$(printf '{"proof":{"key":"0x01","value":null,"proof":"0x"}}' | tohex)"
    # slot-0/slab.json, slot-1/slab.json, the manifest, metadata MDU 0 (0xFF between).
    local meta
    meta='{"format":1,"slot":0,"k":2,"m":1,"witness_mdus":1,"user_mdus":1,"total_mdus":3,"generation":1,"deal_id":7,"manifest_root":"'"$G1_INF"'"}'
    seed slab_json one-slot "$(printf '%s' "$meta" | tohex)"
    seed slab_json two-slots "$(printf '%s' "$meta" | tohex)ff$(printf '%s' "${meta/"slot":0/"slot":1}" | tohex)ff0001ff00"
    seed slab_json huge "$(printf '%s' "${meta/"witness_mdus":1/"witness_mdus":18446744073709551615}" | tohex)"
    # [k][m][witness][mdu][slot][tamper][at: 2] then content: a genuine user shard of
    # RS(1,1), a genuine metadata MDU, and a user shard of RS(4,2) with a flipped blob byte.
    seed upload_shard user "0000000100000000""6e696c"
    seed upload_shard metadata "0000010000000000""6e696c"
    seed upload_shard flipped "0200000302010107""6e696c73746f7265"
}
write_seeds

# ---------------------------------------------------------------------------------------
# 3. Build once (all targets), then run each.
t0=$SECONDS
echo "== building fuzz targets (sanitizer: $FUZZ_SANITIZER; env: ${FUZZ_ENV[*]}) into $FUZZ_TARGET_DIR"
cargo_fuzz build "${FUZZ_FLAGS[@]}"
BUILD_S=$((SECONDS - t0))
echo "== build step ${BUILD_S}s"

mkdir -p "$LOG_DIR"
FAILED=()
t0=$SECONDS
for target in "${TARGETS[@]}"; do
    log="$LOG_DIR/$target.log"
    mkdir -p "$CORPUS_DIR/$target" "$ARTIFACT_DIR/$target"
    printf '== fuzz %-20s %ss ... ' "$target" "$SECONDS_PER_TARGET"
    rc=0
    cargo_fuzz run "${FUZZ_FLAGS[@]}" "$target" "$CORPUS_DIR/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout="$FUZZ_TIMEOUT_S" \
        -rss_limit_mb="$FUZZ_RSS_LIMIT_MB" \
        -print_final_stats=1 >"$log" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ]; then
        runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
        cov="$(grep -o 'cov: [0-9]*' "$log" | tail -1)"
        echo "ok (${runs:-?} runs, ${cov:-cov: ?})"
        continue
    fi
    echo "FAILED (exit $rc)"
    FAILED+=("$target")
    echo "---- what happened (full log: $log)"
    # The panic message or sanitizer report, without libFuzzer's progress lines.
    grep -v -E '^#[0-9]+|^INFO:|NEW_FUNC' "$log" |
        grep -E -A12 -m1 'panicked at|==ERROR|ERROR: libFuzzer|^error(\[|:)' | head -30 || true
    artifact="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)"
    if [ -n "$artifact" ] && [ -f "$artifact" ]; then
        echo "---- crashing input: $artifact ($(wc -c <"$artifact") bytes)"
        tohex <"$artifact" | head -c 2048
        echo
        printf -- '---- reproduce: env'
        printf " %q" "${FUZZ_ENV[@]}"
        echo " cargo fuzz run ${FUZZ_FLAGS[*]} $target $artifact"
    else
        echo "---- no artifact written (build or harness failure); see $log"
    fi
done
RUN_S=$((SECONDS - t0))

echo "== run step ${RUN_S}s for ${#TARGETS[@]} targets; logs in $LOG_DIR"
if [ "${#FAILED[@]}" -gt 0 ]; then
    echo "FUZZ FAILED: ${FAILED[*]}"
    exit 1
fi
echo "fuzz: all ${#TARGETS[@]} targets ran ${SECONDS_PER_TARGET}s without a crash"
