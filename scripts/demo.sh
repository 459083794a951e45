#!/usr/bin/env bash
# Quick start: builds vigie, starts the service on the embedded default store (RocksDB under
# ./vigie-data), and shows it working: creates a key and a bank, banks a photo, screens edited
# copies of it (recompressed, WebP, EXIF-rotated) and an unrelated photo, then stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The build `cargo test` makes (dependencies optimised, see Cargo.toml): after scripts/test.sh, or
# before it, RocksDB's C++ sources are compiled once for both.
cargo test --locked --no-run --quiet
bin="${CARGO_TARGET_DIR:-target}/debug/vigie"
data="${VIGIE_DEMO_DATA:-./vigie-data}"
addr=127.0.0.1:50051
fx=tests/fixtures

echo "== keys: one for the trust team (curate), one for the platform (screen)"
run=$(date +%s)
curate_key=$("$bin" keys create --role curate --name "demo-curator-$run" --data-dir "$data")
screen_key=$("$bin" keys create --role screen --name "demo-platform-$run" --data-dir "$data")

echo "== starting vigie serve on $addr (data in $data)"
"$bin" serve --listen "$addr" --data-dir "$data" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  "$bin" client --addr "http://$addr" --key "$screen_key" screen "$fx/wine.jpg" >/dev/null 2>&1 && break
  sleep 0.1
done

export VIGIE_ADDR="http://$addr"
echo "== create a bank and add a photo to it"
VIGIE_KEY="$curate_key" "$bin" client create-bank "demo-ads-$run"
VIGIE_KEY="$curate_key" "$bin" client add-image --bank "demo-ads-$run" --external-id case-1 --label trafficking "$fx/bridge.jpg"

echo "== screen edited copies (they match) and an unrelated photo (it does not)"
VIGIE_KEY="$screen_key" "$bin" client screen "$fx/formats/baseline.jpg" "$fx/formats/lossy.webp" \
  "$fx/formats/exif-orientation-6.jpg" "$fx/wine.jpg"
