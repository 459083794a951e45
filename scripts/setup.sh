#!/usr/bin/env bash
# Installs what building vigie needs when it is missing. Safe to run again.
#  - a Rust toolchain (cargo): not installed here; see https://rustup.rs
#  - libclang, for the bindings of RocksDB's C++ library (librocksdb-sys); a C++ compiler
set -euo pipefail

need_install=()
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found: install a Rust toolchain (1.88 or newer) first" >&2
  exit 1
fi
if ! { ldconfig -p 2>/dev/null | grep -q 'libclang\(-[0-9.]*\)\?\.so'; } && ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1; then
  need_install+=(libclang-dev)
fi
command -v c++ >/dev/null 2>&1 || need_install+=(g++)

if [ ${#need_install[@]} -eq 0 ]; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${need_install[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_install[@]}" >/dev/null
else
  echo "setup: please install: ${need_install[*]} (libclang is needed to build RocksDB's bindings)" >&2
  exit 1
fi
