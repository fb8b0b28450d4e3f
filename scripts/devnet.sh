# shellcheck shell=bash
# A devnet for a test script (source it after env.sh; uses the CLI tier d built):
#
#   devnet_up DIR ARGS...  `nilstore devnet up --dir DIR/net ARGS...` in the background, its
#                          log in DIR/devnet.log; waits up to 240 s for DIR/net/devnet.json
#                          (written once every daemon is registered on chain); sets
#                          DEVNET_PID and DEVNET_JSON
#   devnet_down            stops it (TERM; KILL after 30 s) and keeps its log in
#                          $NILSTORE_KEEP_DEVNET_LOG when that is set

devnet_up() {
    DEVNET_DIR="$1"
    shift
    DEVNET_JSON="$DEVNET_DIR/net/devnet.json"
    "$CARGO_TARGET_DIR/debug/nilstore" devnet up --dir "$DEVNET_DIR/net" "$@" \
        >"$DEVNET_DIR/devnet.log" 2>&1 &
    DEVNET_PID=$!
    for _ in $(seq 480); do
        [ -s "$DEVNET_JSON" ] && return 0
        kill -0 "$DEVNET_PID" 2>/dev/null || break
        sleep 0.5
    done
    tail -50 "$DEVNET_DIR/devnet.log" >&2
    echo "the devnet did not start" >&2
    return 1
}

devnet_down() {
    [ -n "${DEVNET_PID:-}" ] || return 0
    kill "$DEVNET_PID" 2>/dev/null || true
    for _ in $(seq 300); do
        kill -0 "$DEVNET_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$DEVNET_PID" 2>/dev/null || true
    wait "$DEVNET_PID" 2>/dev/null || true
    if [ -n "${NILSTORE_KEEP_DEVNET_LOG:-}" ] && [ -f "$DEVNET_DIR/devnet.log" ]; then
        cp "$DEVNET_DIR/devnet.log" "$NILSTORE_KEEP_DEVNET_LOG" || true
    fi
}
