#!/usr/bin/env python3
"""Regenerate tests/fixtures/ from ../shared/corpus (needs Pillow: pip install pillow).

Every format fixture is the same picture (the corpus photo lomiri_Bridge_by_Sander_Klootwijk.jpg,
CC-BY-SA-4.0, downscaled) saved in one format or pixel mode, so the decoding tests can check that
each lands within a few PDQ bits of the lossless reference `formats/reference.png`.
The generated files are committed; this script documents how they were made.
"""
import shutil
import sys
from pathlib import Path

from PIL import Image, ImageOps

root = Path(__file__).resolve().parent.parent
corpus = root.parent / "shared" / "corpus"
out = root / "tests" / "fixtures"
fmt = out / "formats"
fmt.mkdir(parents=True, exist_ok=True)

src_name = "lomiri_Bridge_by_Sander_Klootwijk.jpg"
for src, dst in [(src_name, "bridge.jpg"), ("tux_747.png", "tux_747.png"), ("lomiri_Wine_by_Jakkub_Mede.jpg", "wine.jpg")]:
    shutil.copyfile(corpus / src, out / dst)

base = Image.open(corpus / src_name).convert("RGB").resize((256, 144), Image.LANCZOS)
base.save(fmt / "reference.png")
base.save(fmt / "baseline.jpg", quality=90)
base.save(fmt / "progressive.jpg", quality=90, progressive=True)
base.convert("CMYK").save(fmt / "cmyk.jpg", quality=90)
base.convert("L").save(fmt / "grey.png")
# 16-bit grey, built by hand (v * 257 maps 0..255 onto 0..65535).
g = base.convert("L")
g16 = Image.frombytes("I;16", g.size, b"".join((v * 257).to_bytes(2, "little") for v in g.tobytes()))
g16.save(fmt / "grey16.png")
base.quantize(colors=256).save(fmt / "palette.png")
la = base.convert("LA")
la.save(fmt / "grey-alpha.png")
# Alpha that is not all opaque (else encoders drop it), but nearly so: the picture stays the same.
rgba = base.convert("RGBA")
rgba.putalpha(250)
rgba.save(fmt / "lossy-alpha.webp", quality=85)
base.save(fmt / "lossy.webp", quality=85)
base.save(fmt / "lossless.webp", lossless=True)
inverted = ImageOps.invert(base)
base.save(fmt / "two-frames.gif", save_all=True, append_images=[inverted], duration=100, loop=0)
small = base.resize((128, 72), Image.LANCZOS)
small.save(fmt / "small.bmp")
small.save(fmt / "small-lzw.tiff", compression="tiff_lzw")
small.save(fmt / "small-reference.png")
# Stored rotated 90 degrees counter-clockwise, with EXIF orientation 6 ("rotate 90 clockwise to view").
exif = Image.Exif()
exif[0x0112] = 6
base.transpose(Image.ROTATE_90).save(fmt / "exif-orientation-6.jpg", quality=90, exif=exif)
print("fixtures written to", out, file=sys.stderr)
