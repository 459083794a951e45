#!/usr/bin/env bash
# Runs each fuzz target (fuzz/fuzz_targets) for SECONDS seconds (default 20), one after another,
# starting from its committed seed corpus (fuzz/seeds/<target>) and what earlier runs found
# (fuzz/corpus/<target>, not committed). A crash stops with the failing input saved under
# fuzz/artifacts/<target>/ and a non-zero exit. docs/FUZZING.md: longer runs, crashes.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Needs a nightly toolchain and cargo-fuzz (scripts/setup.sh installs both). The fuzz build has its
# own target directory, VIGIE_FUZZ_TARGET_DIR, by default "$CARGO_TARGET_DIR-fuzz" when
# CARGO_TARGET_DIR is set (CI keeps it between runs), else fuzz/target. It builds vigie without its
# default `store` feature, so RocksDB's C++ is not compiled again.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
shift || true
# The test command lints the main crate through clippy-driver: not this nightly build.
unset RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
  target_dir="${VIGIE_FUZZ_TARGET_DIR:-$CARGO_TARGET_DIR-fuzz}"
else
  target_dir="${VIGIE_FUZZ_TARGET_DIR:-$PWD/fuzz/target}"
fi
unset CARGO_TARGET_DIR

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

# The lockfile is committed: refuse to run on other versions than it names.
cargo +nightly fetch --locked --manifest-path fuzz/Cargo.toml
started=$(date +%s)
cargo +nightly fuzz build --target-dir "$target_dir"
echo "fuzz: build took $(( $(date +%s) - started )) s" >&2

for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  echo "fuzz: $t for ${seconds} s" >&2
  # -rss_limit_mb: the targets' decode limits keep one input far below it.
  cargo +nightly fuzz run --target-dir "$target_dir" "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1
done
