#!/usr/bin/env bash
# A local cluster: three nats-server nodes (JetStream, one stream replicated 3 times) and three
# vigie replicas on loopback, each with its own data directory. Adds a photo to a bank on replica
# 1 and screens an edited copy of it on replicas 2 and 3, then stops everything.
# Keep it running with CLUSTER_KEEP=1 (Ctrl-C stops it). Files go to ${CLUSTER_DIR:-./vigie-cluster}.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --locked --no-run --quiet
bin="${CARGO_TARGET_DIR:-target}/debug/vigie"
nats_server=$(command -v nats-server || true)
if [ -z "$nats_server" ]; then
  nats_server="$(python3 -c "import sysconfig; print(sysconfig.get_path('scripts'))")/nats-server"
fi
dir="${CLUSTER_DIR:-./vigie-cluster}"
rm -rf "$dir"
mkdir -p "$dir"
fx=tests/fixtures

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

echo "== three NATS nodes (client ports 14221-14223), JetStream stores under $dir/nats"
for i in 1 2 3; do
  routes=""
  for j in 1 2 3; do
    [ "$j" = "$i" ] || routes="$routes${routes:+, }\"nats-route://127.0.0.1:1624$j\""
  done
  mkdir -p "$dir/nats/n$i"
  cat >"$dir/nats/n$i.conf" <<EOF
server_name: n$i
listen: "127.0.0.1:1422$i"
max_payload: 8MB
jetstream { store_dir: "$dir/nats/n$i" }
cluster { name: vigie, listen: "127.0.0.1:1624$i", routes: [$routes] }
EOF
  "$nats_server" -c "$dir/nats/n$i.conf" >"$dir/nats/n$i.log" 2>&1 &
  pids+=($!)
done
nats="nats://127.0.0.1:14221,nats://127.0.0.1:14222,nats://127.0.0.1:14223"

echo "== three vigie replicas (gRPC ports 15051-15053), each with its own data directory"
for i in 1 2 3; do
  "$bin" serve --insecure-no-auth --listen "127.0.0.1:1505$i" --data-dir "$dir/replica$i" \
    --metrics-listen "127.0.0.1:1909$i" --nats "$nats" >"$dir/replica$i.log" 2>&1 &
  pids+=($!)
done
for i in 1 2 3; do
  for _ in $(seq 1 600); do
    "$bin" client --addr "http://127.0.0.1:1505$i" screen "$fx/wine.jpg" >/dev/null 2>&1 && break
    sleep 0.1
  done
done

run=$(date +%s)
echo "== on replica 1: create a bank and add a photo"
"$bin" client --addr http://127.0.0.1:15051 create-bank "cluster-demo-$run"
"$bin" client --addr http://127.0.0.1:15051 add-image --bank "cluster-demo-$run" \
  --external-id case-1 --label demo "$fx/bridge.jpg"

for i in 2 3; do
  echo "== on replica $i: screen an edited copy (WebP) of the photo"
  "$bin" client --addr "http://127.0.0.1:1505$i" screen "$fx/formats/lossy.webp"
done
echo "== replica lag and apply latency: curl -s http://127.0.0.1:19091/metrics | grep vigie_cluster"
if [ "${CLUSTER_KEEP:-0}" = "1" ]; then
  echo "== running; Ctrl-C stops the cluster (logs in $dir)"
  wait
fi
