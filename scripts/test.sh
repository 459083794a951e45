#!/usr/bin/env bash
# The test command: what CI runs (.ci/run) and what a developer runs before pushing.
# Installs what is missing, checks formatting, builds every target once with clippy's lints as
# errors, then runs the whole test suite from that same build.
# Tests that need ../shared (the corpus and Meta's reference hashes) skip with a message without it.
# Last, each fuzz target runs for VIGIE_FUZZ_SECONDS seconds (default 20; 0 skips them), on a
# nightly sanitizer build of the library without RocksDB (scripts/fuzz.sh, docs/FUZZING.md).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --check

# Lints and tests share one build. `cargo clippy --all-targets` is a check build: it only checks
# the crates that the tests compile, so librocksdb-sys's build script links six of them (bitflags,
# cfg-if, either, itertools, libc, regex-syntax) built apart without debuginfo, its unit differs
# from the test build's, and RocksDB's C++ (~25 minutes here) was compiled twice on a fresh machine
# (found by comparing `cargo +nightly {test --no-run, clippy --all-targets} --unit-graph
# -Z unstable-options`). Instead clippy-driver compiles this crate inside the test build, as the
# workspace wrapper (what `cargo clippy` itself sets up, for a check build): the dependencies are
# compiled once, in the test profile, and lints are denied as `cargo clippy -- -D warnings` would.
# The test run below keeps the same wrapper, so it reuses that build instead of recompiling.
clippy_driver="$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver || true)"
if [ -z "$clippy_driver" ]; then
  echo "test.sh: clippy-driver not found: install the clippy component (rustup component add clippy)" >&2
  exit 1
fi
export RUSTC_WORKSPACE_WRAPPER="$clippy_driver"
# clippy-driver reads its extra arguments from CLIPPY_ARGS, separated as cargo-clippy separates them.
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
cargo test --locked --all-targets --no-run
cargo test --locked

fuzz_seconds="${VIGIE_FUZZ_SECONDS:-20}"
if [ "$fuzz_seconds" != 0 ]; then
  scripts/fuzz.sh "$fuzz_seconds"
fi
