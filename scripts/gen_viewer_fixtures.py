#!/usr/bin/env python3
"""Regenerate tests/fixtures/viewer/: small files whose picture as a viewer sees it differs from
what a naive decode gives (issue 15, kinds 2 and 6).

- Alpha that no viewer honours: 32-bit BMPs (V3 and V5 headers, BI_BITFIELDS with an alpha mask)
  whose alpha bytes are all 0, shown opaque everywhere; one with real transparency as a control.
- Alpha that viewers honour although it hides everything: a PNG whose alpha is all 0 over a photo
  (displayed: an empty page; stored: the photo).
- Animations whose default image is not what plays: an APNG whose default (IDAT) image is not
  part of the animation, and a GIF and an animated WebP whose photo appears in a later frame
  only, after a blank first frame. `photo.png` is the picture hidden in them.

The pictures are tests/fixtures/formats/reference.png (the corpus bridge photo) and a plain
card, at 128x72. Needs Pillow (pip install pillow). The generated files are committed; this script
documents how they were made.
"""
import struct
import zlib
from pathlib import Path

from PIL import Image, ImageDraw

root = Path(__file__).resolve().parent.parent
out = root / "tests" / "fixtures" / "viewer"
out.mkdir(parents=True, exist_ok=True)
W, H = 128, 72
photo = Image.open(root / "tests" / "fixtures" / "formats" / "reference.png").convert("RGB").resize((W, H), Image.LANCZOS)
photo.save(out / "photo.png")

# A second, unrelated picture: diagonal stripes and a disc (plenty of PDQ quality).
other = Image.new("RGB", (W, H), (240, 230, 200))
draw = ImageDraw.Draw(other)
for x in range(-H, W, 12):
    draw.line([(x, 0), (x + H, H)], fill=(40, 60, 120), width=4)
draw.ellipse([70, 10, 118, 58], fill=(200, 30, 30))
other.save(out / "other.png")
blank = Image.new("RGB", (W, H), (255, 255, 255))


def bmp32(path, rgba_rows, header):
    """A bottom-up 32-bit BI_BITFIELDS BMP with masks R=00FF0000 G=0000FF00 B=000000FF
    A=FF000000; `header` is 56 (BITMAPV3INFOHEADER) or 124 (BITMAPV5HEADER)."""
    pixels = b"".join(bytes((b, g, r, a)) for row in reversed(rgba_rows) for (r, g, b, a) in row)
    info = struct.pack("<IiiHHIIiiII", header, W, H, 1, 32, 3, len(pixels), 2835, 2835, 0, 0)
    info += struct.pack("<IIII", 0x00FF0000, 0x0000FF00, 0x000000FF, 0xFF000000)
    if header == 124:
        info += b"BGRs" + bytes(36) + struct.pack("<III", 0, 0, 0)  # sRGB, no endpoints/gamma
        info += struct.pack("<IIII", 4, 0, 0, 0)  # intent: perceptual; no profile
    assert len(info) == header
    offset = 14 + header
    path.write_bytes(b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + pixels)


rows = [[photo.getpixel((x, y)) + (0,) for x in range(W)] for y in range(H)]
bmp32(out / "bmp-v3-alpha-all-zero.bmp", rows, 56)
bmp32(out / "bmp-v5-alpha-all-zero.bmp", rows, 124)
# Control: the same photo with a real alpha (opaque left half, transparent right half).
half = [[photo.getpixel((x, y)) + (255 if x < W // 2 else 0,) for x in range(W)] for y in range(H)]
bmp32(out / "bmp-v5-alpha-half.bmp", half, 124)

# A PNG whose alpha hides everything: browsers show nothing, the stored pixels are the photo.
hidden = photo.convert("RGBA")
hidden.putalpha(0)
hidden.save(out / "png-alpha-all-zero.png")


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def idat_payload(img):
    raw = b"".join(b"\x00" + img.tobytes()[y * W * 3:(y + 1) * W * 3] for y in range(H))
    return zlib.compress(raw, 9)


def apng_hidden_default(path, default, frames):
    """An APNG (W3C PNG 3rd edition, APNG chunks) whose IDAT default image comes before the
    first fcTL: not part of the animation, shown only by decoders without APNG support."""
    body = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0))
    body += png_chunk(b"acTL", struct.pack(">II", len(frames), 0))
    body += png_chunk(b"IDAT", idat_payload(default))
    seq = 0
    for frame in frames:
        # fcTL: whole canvas, 1 s, dispose none, blend source.
        body += png_chunk(b"fcTL", struct.pack(">IIIIIHHBB", seq, W, H, 0, 0, 1, 1, 0, 0))
        seq += 1
        body += png_chunk(b"fdAT", struct.pack(">I", seq) + idat_payload(frame))
        seq += 1
    body += png_chunk(b"IEND", b"")
    path.write_bytes(body)


apng_hidden_default(out / "apng-hidden-default.png", other, [blank, photo])

# GIF and WebP: a blank first frame (the default image), the photo second, the other picture
# third; 1 s each.
frames = [blank, photo, other]
frames[0].save(out / "gif-photo-in-frame-1.gif", save_all=True, append_images=frames[1:], duration=1000, loop=0)
frames[0].save(out / "webp-photo-in-frame-1.webp", save_all=True, append_images=frames[1:], duration=1000, loop=0, lossless=True)

for f in sorted(out.iterdir()):
    print(f"{f.stat().st_size:7d} {f.name}")
