#!/usr/bin/env bash
# The main job: a local NilStore network in one process (validator, 6 storage providers,
# 1 relay; `nilstore devnet up`), a sample file stored in a deal and read back verified
# through it, then the devnet stays in the foreground for the CLI (and the browser) until
# Ctrl-C. Installs what is missing first (scripts/setup.sh).
#
#   scripts/run.sh [--dir D] [--exit] [devnet options...]
#
#   --dir D   devnet state directory (default: devnet); its devnet.json is the network file
#   --exit    stop after the sample round trip (smoke test)
#   other options go to `nilstore devnet up` (--providers N --relays R --api A --port-base P
#             --web-addr A: where the web app is served, default 127.0.0.1:8080)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash "$ROOT/scripts/setup.sh"
# shellcheck source=env.sh
. "$ROOT/scripts/env.sh"
# The CLI and the daemons (for `devnet up --processes`), optimised dev profile. With
# NILSTORE_BIN_DIR set, the binaries already built there are used instead (scripts/test.sh
# passes the ones its native-test tier built: a `--bins` build resolves features without
# the dev-dependencies and would compile libp2p and commonware a second time).
if [ -n "${NILSTORE_BIN_DIR:-}" ]; then
    for b in nilstore nilstore-provider nilstore-relay; do
        [ -x "$NILSTORE_BIN_DIR/$b" ] || {
            echo "run.sh: $NILSTORE_BIN_DIR/$b missing (unset NILSTORE_BIN_DIR to build)" >&2
            exit 1
        }
    done
    BIN="$NILSTORE_BIN_DIR/nilstore"
else
    cargo build -p nilstore-cli -p nilstore-provider -p nilstore-relay --bins
    BIN="$CARGO_TARGET_DIR/debug/nilstore"
fi

# The web app (web/), served by the devnet with a faucet: scripts/build-web.sh.
WEB_APP="$(bash "$ROOT/scripts/build-web.sh" | tail -n 1)"

DIR=devnet
EXIT=0
ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
    --dir)
        DIR="$2"
        shift 2
        ;;
    --exit)
        EXIT=1
        shift
        ;;
    *)
        ARGS+=("$1")
        shift
        ;;
    esac
done
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
rm -f "$DIR/devnet.json"

"$BIN" devnet up --dir "$DIR" --web "$WEB_APP" "${ARGS[@]}" >/dev/null 2>"$DIR/devnet.log" &
PID=$!
stop() {
    kill -TERM "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT TERM

printf 'starting the devnet (log: %s) ...\n' "$DIR/devnet.log"
for _ in $(seq 1 360); do
    [ -f "$DIR/devnet.json" ] && break
    if ! kill -0 "$PID" 2>/dev/null; then
        printf 'the devnet did not start:\n' >&2
        tail -n 20 "$DIR/devnet.log" >&2
        exit 1
    fi
    sleep 0.5
done
[ -f "$DIR/devnet.json" ] || {
    printf 'the devnet did not start within 180 s\n' >&2
    exit 1
}

export NILSTORE_NETWORK="$DIR/devnet.json"
export NILSTORE_HOME="$DIR/client"
SAMPLE="$DIR/sample"
mkdir -p "$SAMPLE"
head -c $((16 << 20)) /dev/urandom >"$SAMPLE/sample.bin"
cp README.md "$SAMPLE/README.md"

printf '\n$ nilstore put sample.bin README.md\n'
PUT="$("$BIN" put "$SAMPLE/sample.bin" "$SAMPLE/README.md")"
printf '%s\n' "$PUT"
DEAL="$(printf '%s\n' "$PUT" | sed -n 's/^deal \([0-9][0-9]*\) .*/\1/p' | head -n 1)"
[ -n "$DEAL" ] || {
    printf 'no deal id in the put output\n' >&2
    exit 1
}
printf '\n$ nilstore ls %s\n' "$DEAL"
"$BIN" ls "$DEAL"
printf '\n$ nilstore get %s sample.bin --out sample.out\n' "$DEAL"
"$BIN" get "$DEAL" sample.bin --out "$SAMPLE/sample.out"
cmp "$SAMPLE/sample.bin" "$SAMPLE/sample.out"
printf 'sample.bin came back byte-identical (16 MiB, every blob verified)\n'

if [ "$EXIT" = 1 ]; then
    exit 0
fi
WEB_URL="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("web") or "")' "$DIR/devnet.json")"
if [ -n "$WEB_URL" ]; then
    printf '\nThe web app: open %s in a browser (a new account there gets tokens from the Faucet button).\n' "$WEB_URL"
fi
printf '\nThe devnet is up. In another shell:\n'
printf '  export NILSTORE_NETWORK=%s\n' "$DIR/devnet.json"
printf '  %s put FILE | get DEAL PATH --out F | ls DEAL | rm DEAL PATH | deal show DEAL\n' "$BIN"
printf 'Ctrl-C stops it (state stays in %s).\n' "$DIR"
wait "$PID"
