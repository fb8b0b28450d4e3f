#!/usr/bin/env bash
# Installs what is missing, builds the release client and runs `nilstore demo "$@"`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash "$ROOT/scripts/setup.sh"
# shellcheck source=env.sh
. "$ROOT/scripts/env.sh"
cargo build -p nilstore-client --release --no-default-features
exec "$CARGO_TARGET_DIR/release/nilstore" demo "$@"
