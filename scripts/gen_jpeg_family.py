#!/usr/bin/env python3
"""Regenerate tests/fixtures/jpeg-family/: one small picture in every JPEG layout and coding.

The picture is tests/fixtures/formats/reference.png (the corpus bridge photo, see
make_fixtures.py) reduced to 128x72. Each file is a legal JPEG (ITU-T T.81) that some encoder can
write; tests/decoding.rs says what vigie must answer for each: hash it (near the 4:4:4 control) or
`unsupported_format` naming the reason. `corrupt` is only for damaged data.

Needs Pillow (pip install pillow) and cjpeg/jpegtran from libjpeg-turbo
(Debian: apt-get install libjpeg-turbo-progs). The layouts those tools cannot write (12-bit
samples, lossless, fractional chroma sampling, YCCK, two components) come from the small
baseline encoder below, written from T.81 (Annex A for the DCT and the coding model, Annex K for
the Huffman tables). The generated files are committed; this script documents how they were made.
"""
import io
import math
import struct
import subprocess
import tempfile
from pathlib import Path

from PIL import Image

root = Path(__file__).resolve().parent.parent
out = root / "tests" / "fixtures" / "jpeg-family"
out.mkdir(parents=True, exist_ok=True)
W, H = 128, 72
picture = Image.open(root / "tests" / "fixtures" / "formats" / "reference.png").convert("RGB").resize((W, H), Image.LANCZOS)

# ---- with libjpeg-turbo's own tools -------------------------------------------------------------

tmp = Path(tempfile.mkdtemp())
ppm = tmp / "src.ppm"
picture.save(ppm)


def cjpeg(name, *args, src=ppm):
    subprocess.run(["cjpeg", "-quality", "90", *args, "-outfile", str(out / name), str(src)], check=True)


def jpegtran(name, src, *args):
    subprocess.run(["jpegtran", *args, "-outfile", str(out / name), str(out / src)], check=True)


def scans_file(text):
    path = tmp / f"scans{abs(hash(text))}.txt"
    path.write_text(text)
    return str(path)


# One scan per component: the only way to code blocks-per-MCU over T.81's limit of 10 (4x4 luma).
NON_INTERLEAVED = scans_file("0;\n1;\n2;\n")

cjpeg("s444.jpg", "-sample", "1x1")  # the control
for s in ["2x1", "2x2", "1x2", "4x1", "4x2", "1x4", "3x1", "3x2", "2x4", "2x3"]:
    cjpeg(f"s{s}.jpg", "-sample", s)
for s in ["3x3", "4x4", "4x3"]:
    cjpeg(f"s{s}-scan-per-component.jpg", "-sample", s, "-scans", NON_INTERLEAVED)
cjpeg("chroma-finer-than-luma.jpg", "-sample", "1x1,2x2,2x2")
cjpeg("cb-full-cr-quarter.jpg", "-sample", "2x2,2x2,1x1")
cjpeg("s4x4-2x2-1x1.jpg", "-sample", "4x4,2x2,1x1", "-scans", NON_INTERLEAVED)
cjpeg("arithmetic.jpg", "-arithmetic")
cjpeg("arithmetic-progressive.jpg", "-arithmetic", "-progressive")
cjpeg("arithmetic-s3x1.jpg", "-arithmetic", "-sample", "3x1")
cjpeg("restart-every-mcu.jpg", "-restart", "1B")
cjpeg("restart-every-row-s4x2.jpg", "-restart", "1", "-sample", "4x2")
cjpeg("progressive.jpg", "-progressive")
cjpeg("progressive-s4x2.jpg", "-progressive", "-sample", "4x2")
cjpeg("rgb.jpg", "-rgb")
cjpeg("grey.jpg", "-grayscale")
cjpeg("grey-s2x2.jpg", "-grayscale", "-sample", "2x2")


# Up to 100 scans is what cjpeg's scan scripts take: the 190- and 568-scan files come from the
# progressive encoder below.
cjpeg("progressive-100-scans.jpg", "-scans", scans_file(
    "0,1,2: 0-0, 0, 0;\n" + "".join(f"{c}: {k}-{k}, 0, 0;\n" for c in range(3) for k in range(1, 34))))

# CMYK as Photoshop writes it (Adobe APP14, inverted values) and with subsampled M and Y.
cmyk = picture.convert("CMYK")
cmyk.save(out / "cmyk-adobe.jpg", quality=90)
cmyk.save(tmp / "cmyk.jpg", quality=90)

# ---- a small baseline encoder for what the tools above cannot write ------------------------------

ZIGZAG = [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27,
          20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58,
          59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63]
Q_ANNEX_K = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69,
          56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81,
          104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]
# Scaled to quality 90 as libjpeg does (jcparam.c: 100 - 2 * 90 = 20 %, at least 1), like cjpeg's files.
Q_LUMA = [max(1, (q * 20 + 50) // 100) for q in Q_ANNEX_K]
DC_BITS = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
DC_VALS = list(range(12))
AC_BITS = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D]
AC_VALS = bytes.fromhex(
    "01020300041105122131410613516107227114328191a1082342b1c11552d1f02433627282090a161718191a25"
    "262728292a3435363738393a434445464748494a535455565758595a636465666768696a737475767778797a83"
    "8485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3"
    "d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9fa")


def huffman_codes(bits, vals):
    """Code of each symbol from BITS/HUFFVAL (T.81 Annex C)."""
    codes, code, k = {}, 0, 0
    for length in range(1, 17):
        for _ in range(bits[length - 1]):
            codes[vals[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return codes


DC_CODES, AC_CODES = huffman_codes(DC_BITS, DC_VALS), huffman_codes(AC_BITS, AC_VALS)


class BitWriter:
    def __init__(self):
        self.out, self.acc, self.n = bytearray(), 0, 0

    def put(self, value, length):
        for i in range(length - 1, -1, -1):
            self.acc = (self.acc << 1) | ((value >> i) & 1)
            self.n += 1
            if self.n == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF:
                    self.out.append(0)  # byte stuffing (T.81 F.1.2.3)
                self.acc, self.n = 0, 0

    def flush(self):
        if self.n:
            self.put((1 << (8 - self.n)) - 1, 8 - self.n)
        return bytes(self.out)


def category(v):
    return 0 if v == 0 else abs(v).bit_length()


def put_value(w, v, size):
    if size:
        w.put(v if v > 0 else v + (1 << size) - 1, size)


COS = [[math.cos((2 * x + 1) * u * math.pi / 16) for x in range(8)] for u in range(8)]


def fdct(block):
    """8x8 forward DCT (T.81 A.3.3) of level-shifted samples."""
    out = [0.0] * 64
    for v in range(8):
        for u in range(8):
            s = 0.0
            for y in range(8):
                row = block[y * 8:(y + 1) * 8]
                cy = COS[v][y]
                s += cy * sum(row[x] * COS[u][x] for x in range(8))
            cu = 1 / math.sqrt(2) if u == 0 else 1
            cv = 1 / math.sqrt(2) if v == 0 else 1
            out[v * 8 + u] = 0.25 * cu * cv * s
    return out


def planes_of(img, transform):
    px = list(img.get_flattened_data())
    if transform == "ycc":
        conv = lambda p: (0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2],
                          128 - 0.168736 * p[0] - 0.331264 * p[1] + 0.5 * p[2],
                          128 + 0.5 * p[0] - 0.418688 * p[1] - 0.081312 * p[2])
        return [[conv(p)[c] for p in px] for c in range(3)]
    if transform == "ycck":
        # YCCK (Adobe transform 2), as libjpeg writes it from Adobe's inverted CMYK: the true
        # C, M, Y (255 - R, G, B) through the YCbCr transform, K as stored (255: no black).
        conv = lambda p: (0.299 * (255 - p[0]) + 0.587 * (255 - p[1]) + 0.114 * (255 - p[2]),
                          128 - 0.168736 * (255 - p[0]) - 0.331264 * (255 - p[1]) + 0.5 * (255 - p[2]),
                          128 + 0.5 * (255 - p[0]) - 0.418688 * (255 - p[1]) - 0.081312 * (255 - p[2]), 255)
        return [[conv(p)[c] for p in px] for c in range(4)]
    if transform == "two":
        return [[0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2] for p in px],
                [128 - 0.168736 * p[0] - 0.331264 * p[1] + 0.5 * p[2] for p in px]]
    raise ValueError(transform)


def component_blocks(plane, h, v, hmax, vmax, mcux, mcuy):
    """The component subsampled by box averaging to its sampling factors, padded by edge
    replication to whole MCUs, as 8x8 blocks [row][col]."""
    cw, ch = math.ceil(W * h / hmax), math.ceil(H * v / vmax)
    fx, fy = hmax / h, vmax / v
    sub = []
    for y in range(ch):
        for x in range(cw):
            x0, x1 = int(x * fx), max(int(x * fx) + 1, int((x + 1) * fx))
            y0, y1 = int(y * fy), max(int(y * fy) + 1, int((y + 1) * fy))
            vals = [plane[min(yy, H - 1) * W + min(xx, W - 1)] for yy in range(y0, y1) for xx in range(x0, x1)]
            sub.append(sum(vals) / len(vals))
    bw, bh = mcux * h, mcuy * v
    pw = bw * 8

    def at(x, y):
        return sub[min(y, ch - 1) * cw + min(x, cw - 1)]

    return [[[at(bx * 8 + i % 8, by * 8 + i // 8) for i in range(64)] for bx in range(bw)] for by in range(bh)]


def segment(marker, payload):
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def dht(table_class, ident, bits, vals):
    return segment(0xC4, bytes([table_class << 4 | ident]) + bytes(bits) + bytes(vals))


def encode_dct(name, transform, sampling, precision=8, adobe=None):
    """A sequential Huffman JPEG (SOF0, or SOF1 for 12-bit samples) with one interleaved scan."""
    planes = planes_of(picture, transform)
    n = len(planes)
    hmax, vmax = max(s[0] for s in sampling), max(s[1] for s in sampling)
    mcux, mcuy = math.ceil(W / (8 * hmax)), math.ceil(H / (8 * vmax))
    scale = 1 << (precision - 8)
    # 12-bit: samples and quantisers both x16, so the coefficients (and Huffman categories) are
    # those of the 8-bit picture and Annex K's tables still cover them.
    quant = [q * scale for q in Q_LUMA]
    blocks = [component_blocks([s * scale for s in planes[c]], *sampling[c], hmax, vmax, mcux, mcuy) for c in range(n)]
    w = BitWriter()
    pred = [0] * n
    shift = 128 * scale
    for my in range(mcuy):
        for mx in range(mcux):
            for c in range(n):
                h, v = sampling[c]
                for by in range(v):
                    for bx in range(h):
                        b = blocks[c][my * v + by][mx * h + bx]
                        coef = fdct([s - shift for s in b])
                        q = [round(coef[ZIGZAG[k]] / quant[ZIGZAG[k]]) for k in range(64)]
                        diff = q[0] - pred[c]
                        pred[c] = q[0]
                        size = category(diff)
                        w.put(*DC_CODES[size])
                        put_value(w, diff, size)
                        run = 0
                        for k in range(1, 64):
                            if q[k] == 0:
                                run += 1
                                continue
                            while run > 15:
                                w.put(*AC_CODES[0xF0])
                                run -= 16
                            size = category(q[k])
                            w.put(*AC_CODES[(run << 4) | size])
                            put_value(w, q[k], size)
                            run = 0
                        if run:
                            w.put(*AC_CODES[0x00])
    data = w.flush()
    head = b"\xff\xd8"
    if adobe is None:
        head += segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    else:
        head += segment(0xEE, b"Adobe" + struct.pack(">HHHB", 100, 0, 0, adobe))
    pq = 1 if precision > 8 else 0
    qbytes = b"".join(struct.pack(">H", quant[ZIGZAG[k]]) for k in range(64)) if pq else bytes(quant[ZIGZAG[k]] for k in range(64))
    head += segment(0xDB, bytes([pq << 4]) + qbytes)
    sof = 0xC1 if precision > 8 else 0xC0
    head += segment(sof, struct.pack(">BHHB", precision, H, W, n) + b"".join(
        bytes([c + 1, sampling[c][0] << 4 | sampling[c][1], 0]) for c in range(n)))
    head += dht(0, 0, DC_BITS, DC_VALS) + dht(1, 0, AC_BITS, AC_VALS)
    head += segment(0xDA, bytes([n]) + b"".join(bytes([c + 1, 0x00]) for c in range(n)) + b"\x00\x3f\x00")
    (out / name).write_bytes(head + data + b"\xff\xd9")


def encode_lossless(name):
    """A lossless JPEG (SOF3, T.81 Annex H): predictor 1 (the sample to the left), one interleaved
    scan of the three RGB components."""
    px = list(picture.get_flattened_data())
    w = BitWriter()
    for y in range(H):
        for x in range(W):
            for c in range(3):
                s = px[y * W + x][c]
                if x == 0 and y == 0:
                    p = 128
                elif y == 0:
                    p = px[y * W + x - 1][c]
                elif x == 0:
                    p = px[(y - 1) * W + x][c]
                else:
                    p = px[y * W + x - 1][c]
                diff = s - p
                size = category(diff)
                w.put(*DC_CODES[size])
                put_value(w, diff, size)
    data = w.flush()
    head = b"\xff\xd8" + segment(0xEE, b"Adobe" + struct.pack(">HHHB", 100, 0, 0, 0))
    head += segment(0xC3, struct.pack(">BHHB", 8, H, W, 3) + b"".join(bytes([c + 1, 0x11, 0]) for c in range(3)))
    head += dht(0, 0, DC_BITS, DC_VALS)
    head += segment(0xDA, bytes([3]) + b"".join(bytes([c + 1, 0x00]) for c in range(3)) + b"\x01\x00\x00")
    (out / name).write_bytes(head + data + b"\xff\xd9")



def quantised_blocks(planes, precision=8):
    """Every component at 1x1 sampling: the quantised coefficients of each block, zigzag order."""
    mcux, mcuy = math.ceil(W / 8), math.ceil(H / 8)
    out = []
    for plane in planes:
        blocks = component_blocks(plane, 1, 1, 1, 1, mcux, mcuy)
        out.append([[round(c[ZIGZAG[k]] / Q_LUMA[ZIGZAG[k]]) for k in range(64)]
                    for row in blocks for c in (fdct([s - 128 for s in b]) for b in row)])
    return out


# Progressive AC symbols: EOBn (r << 4, T.81 G.1.2.2) and (run 0, size 1..10), all 5 bits long.
PROG_AC_VALS = [r << 4 for r in range(15)] + list(range(1, 11))
PROG_AC_BITS = [0, 0, 0, 0, len(PROG_AC_VALS)] + [0] * 11
PROG_AC_CODES = huffman_codes(PROG_AC_BITS, PROG_AC_VALS)


def encode_progressive(name, passes):
    """A progressive Huffman JPEG (SOF2, T.81 Annex G) with one scan per component, per AC
    coefficient and per bit: an interleaved DC scan, then for each component and coefficient a
    first scan at bit `passes - 1` and `passes - 1` refinement scans down to bit 0. 1 + 189 *
    passes scans."""
    coefs = quantised_blocks(planes_of(picture, "ycc"))
    scans = []
    # DC, interleaved, no point transform.
    w, pred = BitWriter(), [0, 0, 0]
    for b in range(len(coefs[0])):
        for c in range(3):
            diff = coefs[c][b][0] - pred[c]
            pred[c] = coefs[c][b][0]
            size = category(diff)
            w.put(*DC_CODES[size])
            put_value(w, diff, size)
    scans.append((bytes([3, 1, 0x00, 2, 0x00, 3, 0x00, 0, 0, 0]), w.flush()))

    class Run:
        """An end-of-band run with the correction bits its blocks carry (G.1.2.3)."""
        def __init__(self, w):
            self.w, self.n, self.bits = w, 0, []

        def emit(self):
            if self.n:
                r = self.n.bit_length() - 1
                self.w.put(*PROG_AC_CODES[r << 4])
                self.w.put(self.n & ((1 << r) - 1), r)
                for bit in self.bits:
                    self.w.put(bit, 1)
            self.n, self.bits = 0, []

        def add(self, bit=None):
            self.n += 1
            if bit is not None:
                self.bits.append(bit)
            if self.n == 0x7FFF or len(self.bits) > 900:
                self.emit()

    for al in range(passes - 1, -1, -1):
        first = al == passes - 1
        for c in range(3):
            for k in range(1, 64):
                w = BitWriter()
                run = Run(w)
                for block in coefs[c]:
                    q = block[k]
                    mag = abs(q) >> al
                    if first:
                        if mag == 0:
                            run.add()
                            continue
                        run.emit()
                        size = category(mag)
                        w.put(*PROG_AC_CODES[size])
                        put_value(w, mag if q > 0 else -mag, size)
                    elif abs(q) >> (al + 1):
                        run.add(mag & 1)  # already nonzero: a correction bit
                    elif mag:
                        run.emit()  # newly nonzero: magnitude 1 and its sign
                        w.put(*PROG_AC_CODES[1])
                        w.put(1 if q > 0 else 0, 1)
                    else:
                        run.add()
                run.emit()
                ah = 0 if first else al + 1
                scans.append((bytes([1, c + 1, 0x00, k, k, ah << 4 | al]), w.flush()))
    head = b"\xff\xd8" + segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    head += segment(0xDB, bytes([0]) + bytes(Q_LUMA[ZIGZAG[k]] for k in range(64)))
    head += segment(0xC2, struct.pack(">BHHB", 8, H, W, 3) + b"".join(bytes([c + 1, 0x11, 0]) for c in range(3)))
    head += dht(0, 0, DC_BITS, DC_VALS) + dht(1, 0, PROG_AC_BITS, PROG_AC_VALS)
    body = b"".join(segment(0xDA, sos) + data for sos, data in scans)
    (out / name).write_bytes(head + body + b"\xff\xd9")


encode_dct("own-encoder-s2x2.jpg", "ycc", [(2, 2), (1, 1), (1, 1)])  # checks the encoder itself
encode_dct("fractional-s3x1-2x1-1x1.jpg", "ycc", [(3, 1), (2, 1), (1, 1)])
encode_dct("ycck-adobe.jpg", "ycck", [(1, 1), (1, 1), (1, 1), (1, 1)], adobe=2)
encode_dct("two-components.jpg", "two", [(1, 1), (1, 1)])
encode_dct("precision-12.jpg", "ycc", [(1, 1), (1, 1), (1, 1)], precision=12)
encode_lossless("lossless.jpg")
encode_progressive("progressive-190-scans.jpg", 1)
encode_progressive("progressive-568-scans.jpg", 3)

# ---- metadata on an unusual layout: the EXIF orientation must still be read ----------------------


def with_exif_orientation(src, name, orientation):
    """`src` with an APP1 Exif segment holding one IFD0 entry: Orientation (tag 0x0112)."""
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1)
    tiff += struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    body = (out / src).read_bytes()
    (out / name).write_bytes(body[:2] + segment(0xE1, b"Exif\x00\x00" + tiff) + body[2:])


with_exif_orientation("s3x1.jpg", "s3x1-exif-orientation-6.jpg", 6)

for f in sorted(out.iterdir()):
    print(f"{f.stat().st_size:6d} {f.name}")
