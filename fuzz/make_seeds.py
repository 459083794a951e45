#!/usr/bin/env python3
"""Writes the committed seed corpus, fuzz/seeds/<target>/, from the repository's fixtures
(tests/fixtures) and a few hand-written inputs. Run from the repository root:
    python3 fuzz/make_seeds.py
The seeds are small on purpose (under 40 KB each, about 1 MB in all): libFuzzer sets its input
size limit from the largest seed, and a small corpus keeps each execution fast."""

import hashlib
import pathlib
import shutil

ROOT = pathlib.Path(__file__).resolve().parent.parent
SEEDS = ROOT / "fuzz" / "seeds"
FIX = ROOT / "tests" / "fixtures"


def put(target, data, name=None):
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    name = name or hashlib.sha1(data).hexdigest()[:16]
    (d / name).write_bytes(data)


for t in ["decode_image", "import_formats", "hash_text", "proto_requests"]:
    shutil.rmtree(SEEDS / t, ignore_errors=True)

# decode_image: every accepted format, the JPEG layouts (sampling, progressive, arithmetic,
# restart markers, CMYK/YCCK, 12-bit, lossless), animations, alpha, tiny and thin pictures.
IMAGE_EXT = {".jpg", ".png", ".webp", ".gif", ".bmp", ".tiff"}
images = []
for p in sorted(FIX.rglob("*")):
    if p.suffix in IMAGE_EXT and p.stat().st_size <= 40_000 and "eval" not in p.parts and "store" not in p.parts:
        images.append(p)
        put("decode_image", p.read_bytes(), p.parent.name + "-" + p.name)

# import_formats: a selector byte (bits 0-1 format: jsonl, csv, signal-lines, hex; bits 2-4
# algorithm: none, pdq, phash, dhash, md5, sha256; 0x20 strict; 0x40 batches of one; 0x80 default
# label and source), then the file.
JSONL, CSV, SIGNAL, HEX = 0, 1, 2, 3
NONE, PDQ, PHASH, DHASH, MD5, SHA256 = 0, 1, 2, 3, 4, 5


def sel(fmt, alg=NONE, strict=False, batch1=False, defaults=False):
    return bytes([fmt | alg << 2 | (0x20 if strict else 0) | (0x40 if batch1 else 0) | (0x80 if defaults else 0)])


PDQ1 = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
PDQ2 = "3679ec1e1989726e8d9531cb8c54d98993a658cd8f8a985d4d8d36d2d36d29b2"
MD5V = "ffa33026ffc4c0d7f871846ce3701222"
SHA = "fb4079546b5a63382a23d2ee9d6e6299c4bff846ea001fcf1b9f5b5d00ba95d6"
ads = (FIX / "field-cases/csv-one-ad-several-photos/ads.csv").read_bytes()
put("import_formats", sel(CSV) + ads, "csv-ads")
put("import_formats", sel(CSV, strict=True, batch1=True) + ads, "csv-ads-strict")
put("import_formats", sel(CSV, PDQ, defaults=True) + b"hash\r\n" + PDQ1.encode() + b"\r\n" + PDQ2.encode() + b"\r\n", "csv-hash-only-crlf")
te_csv = ("signal_type,signal_str,collab,category,tags\n"
          f"pdq,{PDQ1},my-collab,true_positive,\"a b\"\n"
          f"photo_md5,{MD5V},my-collab,,\n"
          "url,https://example.com/x,my-collab,,\n")
put("import_formats", sel(CSV) + te_csv.encode(), "csv-threatexchange")
for name in ["bank-pdq-photo-hasher.txt", "bank-tab-control.txt", "queries-hash-prefix.txt"]:
    put("import_formats", sel(HEX, PDQ) + (FIX / "field-cases/match-meta-hash-lines" / name).read_bytes(), "hex-pdq-" + name)
ih = (FIX / "field-cases/imagehash-64bit-lists/imagehash-list.txt").read_bytes()
put("import_formats", sel(SIGNAL) + ih, "signal-imagehash")
put("import_formats", sel(HEX, PHASH) + b"# imagehash phash\na2ca0bb34ecb9725\nc666aa97e26f6302\n", "hex-phash-imagehash")
put("import_formats", sel(HEX, MD5) + (MD5V.upper() + "\n" + MD5V + "  photos/a.jpg\n").encode(), "hex-md5-ncmec")
put("import_formats", sel(HEX, SHA256, strict=True) + (SHA + "  photos/b.jpg\n").encode(), "hex-sha256sum")
put("import_formats", sel(SIGNAL) + f"pdq {PDQ1} collab cat\nphoto_md5 {MD5V}\nvideo_md5 {MD5V}\n".encode(), "signal-threatexchange")
utf16 = ("\ufeff" + f"pdq {PDQ2}\r\nphash a2ca0bb34ecb9725\r\n").encode("utf-16-le")
put("import_formats", sel(SIGNAL) + utf16, "signal-utf16le")
put("import_formats", sel(HEX, PDQ) + ("\ufeff" + PDQ1 + "\r\n").encode("utf-16-be"), "hex-utf16be")
jsonl = ('{"external_id":"ad-1","hashes":{"pdq":"%s","md5":"%s","more":["pdq:%s"]},"label":"l","source":"s","note":"n"}\n'
         '{"external_id":"ad-2","hashes":{"sha256":"%s"},"added_by":"x","added_at":"2024-05-01T12:00:00Z","disabled_until":"2030-01-01T00:00:00Z"}\n'
         % (PDQ1, MD5V, PDQ2, SHA))
put("import_formats", sel(JSONL) + jsonl.encode(), "jsonl")
put("import_formats", sel(JSONL, strict=True, batch1=True) + jsonl.encode(), "jsonl-strict")

# hash_text: hashes of each width, hash-list lines, names, times, JSON hashes.
for text in [PDQ1, PDQ2.upper(), " " + MD5V + " ", SHA, "a2ca0bb34ecb9725", "0x5995a6298c9e9777",
             f"hash={PDQ1},norm=128,quality=100,a.jpg", f"{PDQ1},100,ads/case-1.jpg",
             f"{PDQ1}\tads/case-1.jpg", f"\ufeff{SHA}  photos/b.jpg", "pdq", "photo_md5", "pdq,phash,md5",
             "allow", "2024-05-01T12:00:00.5Z", "1714564800", "9999-12-31T23:59:59Z",
             '{"pdq":"%s","more":["md5:%s"]}' % (PDQ1, MD5V),
             '{"external_id":"x","hashes":{"dhash":"5995a6298c9e9777"}}']:
    put("hash_text", text)

# proto_requests: a selector byte (see fuzz_targets/proto_requests.rs) and the encoded message.


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def ld(field, data):
    if isinstance(data, str):
        data = data.encode()
    return varint(field << 3 | 2) + varint(len(data)) + data


def vi(field, n):
    return varint(field << 3) + varint(n)


hashset = ld(1, PDQ1) + ld(4, MD5V)
small_png = (FIX / "field-cases/tiny-and-thin/pic-5x7.png").read_bytes()
small_jpg = (FIX / "jpeg-family/grey.jpg").read_bytes()
gif = (FIX / "viewer/gif-photo-in-frame-1.gif").read_bytes()
seeds = {
    "screen-hashes": (0, ld(1, "r1") + ld(3, hashset) + ld(4, "b") + vi(5, 10)),
    "screen-image": (0, ld(1, "r2") + ld(2, small_png)),
    "screen-gif": (0, ld(2, gif) + ld(4, "b") + ld(4, "nope")),
    "hash-image": (1, ld(1, small_jpg) + ld(2, "pdq") + ld(2, "md5") + vi(3, 1)),
    "create-bank": (2, ld(1, "new_bank") + ld(2, "d") + ld(3, "allow") + vi(4, 1) + ld(5, vi(1, 40) + vi(2, 8))),
    "get-bank": (3, ld(1, "b")),
    "update-bank": (4, ld(1, "b") + ld(2, "desc") + vi(3, 0) + ld(4, "block") + ld(5, vi(1, 31))),
    "delete-bank": (5, ld(1, "b")),
    "add-entries": (6, ld(1, "b") + ld(2, ld(1, "e2") + ld(3, hashset + ld(6, "pdq:" + PDQ2)) + ld(4, "lbl"))
                    + ld(2, ld(1, "e3") + ld(2, small_png))),
    "remove-entries": (7, ld(1, "b") + ld(2, varint(1) + varint(2)) + ld(3, "e1")),
    "get-entry-id": (8, vi(1, 1)),
    "get-entry-external": (8, ld(2, ld(1, "b") + ld(2, "e1"))),
    "list-entries": (9, ld(1, "b") + vi(2, 1) + ld(4, "")),
    "list-audit": (10, ld(1, "b") + ld(2, "2024-01-01T00:00:00Z") + ld(3, "1999999999") + vi(4, 5)),
    "export-csv": (11, ld(1, "b") + ld(2, "csv")),
    "export-hex": (11, ld(1, "b") + ld(2, "hex") + ld(3, "pdq")),
}
for name, (selector, body) in seeds.items():
    put("proto_requests", bytes([selector]) + body, name)

total = sum(p.stat().st_size for p in SEEDS.rglob("*") if p.is_file())
print(f"seeds written: {total} bytes")
