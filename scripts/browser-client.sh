#!/usr/bin/env bash
# The client (nilstore-client) in headless Chromium against a live devnet: starts
# `nilstore devnet up --processes` with six providers and a relay, and runs
# client/tests/browser_devnet.rs in three phases, acting on the network between them
# (the test file says what each phase checks):
#   A  the CLI stores a file and hands its deal key over; the page stores and reads an
#      8 MiB file (its state in OPFS), resumes an interrupted 20 MiB upload from OPFS in
#      a new client, reads the CLI's file, and stores one that the CLI then reads here;
#   B  slot 0's provider killed (kill -9), slot 1's paused (SIGSTOP): the page reads;
#   C  slot 1's provider back, every shard of slot 2 corrupted on its disk, and a proxy
#      that rewrites headers in front of the validator API (scripts/lying-api.py).
# Inputs reach the page at build time (devnet.json, genesis, a free funded dev key, each
# phase's deals); the page hands deals back on `HANDOVER` lines of the runner's output.
set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
# shellcheck source=scripts/devnet.sh
source "$NILSTORE_ROOT/scripts/devnet.sh"
cd "$NILSTORE_ROOT"

# Built by the workspace's test build (scripts/test.sh tier d); a no-op after it.
[ -n "${NILSTORE_SKIP_BUILD:-}" ] || nilstore_native_tests_build
nil="$CARGO_TARGET_DIR/debug/nilstore"
dir="$(mktemp -d)"
proxy=""
cleanup() {
    # A paused provider must be able to stop.
    if [ -s "$dir/net/devnet.json" ]; then
        for pid in $(python3 -c 'import json,sys; print(" ".join(str(p["pid"]) for p in json.load(open(sys.argv[1]))["providers"] if p.get("pid")))' "$dir/net/devnet.json"); do
            kill -CONT "$pid" 2>/dev/null || true
        done
    fi
    [ -z "$proxy" ] || kill "$proxy" 2>/dev/null || true
    devnet_down
    rm -rf "$dir"
}
trap cleanup EXIT
# Epochs of 30 s (120 blocks of 250 ms): a provider that the test silences is not evicted
# for missed proofs while the page reads around it.
devnet_up "$dir" --providers 6 --relays 1 --processes \
    --api 127.0.0.1:0 --port-base 0 --params '{"epoch_blocks":120}'
net="$dir/net/devnet.json"
eval "$(python3 - "$net" "$dir" <<'PY'
import json, os, shlex, sys
info = json.load(open(sys.argv[1]))
keys = json.load(open(info["dev_keys"]))
free = [k for i, k in enumerate(keys) if i not in info["reserved_dev_accounts"]]
# The page and the CLI use different accounts.
cli_key = os.path.join(sys.argv[2], "cli.key")
fd = os.open(cli_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, free[1]["secret"].encode())
os.close(fd)
print("export NILSTORE_DEVNET_JSON=" + shlex.quote(json.dumps(info)))
print("export NILSTORE_CHAIN_GENESIS=" + shlex.quote(open(info["genesis"]).read()))
print("export NILSTORE_CHAIN_KEY=" + shlex.quote(free[0]["secret"]))
print("api=" + shlex.quote(info["api"]))
PY
)"
echo "devnet: $(python3 -c 'import json,os; i=json.loads(os.environ["NILSTORE_DEVNET_JSON"]); print(i["api"], len(i["providers"]), "providers", len(i["relays"]), "relays")')"
cli() { "$nil" --network "$net" --key-file "$dir/cli.key" --home "$dir/cli-home" --json "$@"; }
json_field() { python3 -c 'import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])[sys.argv[1]])' "$1"; }
sha() { python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"; }

# The CLI stores a file (5 MiB, encrypted, RS(4,2)) and hands its deal and key over.
head -c $((5 << 20)) /dev/urandom >"$dir/cli.bin"
deal="$(cli put "$dir/cli.bin" --k 4 --m 2 </dev/null | json_field deal_id)"
key="$(cli deal export-key "$deal" | json_field key)"
export NILSTORE_FROM_CLI
NILSTORE_FROM_CLI="$(printf '{"deal":%s,"key":"%s","path":"cli.bin","len":%s,"sha256":"%s"}' \
    "$deal" "$key" $((5 << 20)) "$(sha "$dir/cli.bin")")"
echo "the CLI stored deal $deal"

# The liar in front of the validator API (phase C); its port is known before the build.
coproc LIAR { exec python3 "$NILSTORE_ROOT/scripts/lying-api.py" "$api"; }
proxy=$LIAR_PID
read -r liar_port <&"${LIAR[0]}"
export NILSTORE_LYING_API="http://127.0.0.1:$liar_port"
# Phase C's input is phase A's output: the later phases get a placeholder until then.
export NILSTORE_FAULTS='{}'

browser() { # FILTER LOG
    WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-900}" \
        wasm_cargo test -p nilstore-client --target wasm32-unknown-unknown \
        --test browser_devnet -- --nocapture "$1" 2>&1 | tee "$2"
    [ "${PIPESTATUS[0]}" = 0 ]
}
handover() { # WHAT LOG -> the JSON the page handed over
    python3 - "$1" "$2" <<'PY'
import sys
what, log = sys.argv[1], sys.argv[2]
lines = [l.split(f"HANDOVER {what} ", 1)[1].strip() for l in open(log) if f"HANDOVER {what} " in l]
assert lines, f"the page handed over no {what!r} deal"
print(lines[-1])
PY
}

echo "== phase A: store and read, interop with the CLI"
browser phase_a "$dir/phase-a.log"
to_cli="$(handover to-cli "$dir/phase-a.log")"
b_deal="$(echo "$to_cli" | json_field deal)"
echo "$to_cli" | json_field key | cli deal import-key "$b_deal" >/dev/null
cli get "$b_deal" "$(echo "$to_cli" | json_field path)" --out "$dir/from-browser.bin" >/dev/null
[ "$(sha "$dir/from-browser.bin")" = "$(echo "$to_cli" | json_field sha256)" ] ||
    { echo "the CLI read the browser's deal $b_deal differently" >&2; exit 1; }
echo "the CLI read the browser's deal $b_deal: identical"

NILSTORE_FAULTS="$(handover faults "$dir/phase-a.log")"
f_deal="$(echo "$NILSTORE_FAULTS" | json_field deal)"
# Build phases B and C before silencing anyone.
WASM_BINDGEN_TEST_TIMEOUT=900 wasm_cargo test -p nilstore-client \
    --target wasm32-unknown-unknown --test browser_devnet --no-run
# Slot s of the faults deal -> "pid home" of its provider.
slot() {
    cli deal show "$f_deal" | python3 -c '
import json, sys
deal = json.loads(sys.stdin.read().strip().splitlines()[-1])
info = json.load(open(sys.argv[1]))
who = deal["slots"][int(sys.argv[2])]["provider"]
p = next(p for p in info["providers"] if p["account"] == who)
print(p["pid"], p["home"])' "$net" "$1"
}
read -r pid0 _ < <(slot 0)
read -r pid1 _ < <(slot 1)
read -r _ home2 < <(slot 2)

echo "== phase B: slot 0's provider killed (pid $pid0), slot 1's paused (pid $pid1)"
kill -9 "$pid0"
kill -STOP "$pid1"
browser phase_b "$dir/phase-b.log"
kill -CONT "$pid1"

echo "== phase C: every shard of slot 2 corrupted in $home2; a lying validator API"
python3 - "$home2" "$f_deal" <<'PY'
import os, sys
home, deal = sys.argv[1], sys.argv[2]
n = 0
for root, _, files in os.walk(home):
    if os.path.basename(root) != deal or os.path.basename(os.path.dirname(root)) != "shards":
        continue
    for f in files:
        if f.endswith(".shard"):
            p = os.path.join(root, f)
            with open(p, "r+b") as fh:
                size = os.path.getsize(p)
                fh.seek(size // 2)
                b = fh.read(1)
                fh.seek(size // 2)
                fh.write(bytes([b[0] ^ 0xFF]))
            n += 1
assert n > 0, f"no shards of deal {deal} under {home}"
print(f"corrupted {n} shard files")
PY
browser phase_c "$dir/phase-c.log"
echo "browser phases A, B and C passed"
