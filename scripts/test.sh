#!/usr/bin/env bash
# The test command: what CI runs (.ci/run) and what a developer runs before pushing.
# Installs what is missing, checks formatting and lints, then runs the whole test suite.
# Tests that need ../shared (the corpus and Meta's reference hashes) skip with a message without it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked
