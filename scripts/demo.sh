#!/usr/bin/env bash
# Builds vigie and shows it working on the test fixtures: hashes a photo and edited copies of it
# (recompressed, other formats, EXIF-rotated), and shows how far each PDQ hash is from the original's.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked --quiet
bin="${CARGO_TARGET_DIR:-target}/release/vigie"
fx=tests/fixtures/formats

echo "== vigie hash (one JSON line per file)"
"$bin" hash "$fx/reference.png"
echo
echo "== PDQ distance of edited copies to the original (a match is <= 31 of 256 bits)"
"$bin" hash --algorithms pdq "$fx/reference.png" "$fx/baseline.jpg" "$fx/lossy.webp" "$fx/palette.png" \
  "$fx/exif-orientation-6.jpg" tests/fixtures/wine.jpg |
  python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin]
ref = int(rows[0]["hashes"]["pdq"]["hex"], 16)
for r in rows:
    d = bin(int(r["hashes"]["pdq"]["hex"], 16) ^ ref).count("1")
    verdict = "MATCH" if d <= 31 else "-    "
    print("%4d  %s  %s" % (d, verdict, r["file"]))
'
