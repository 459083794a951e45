//! Decoding: every accepted format and pixel mode of one picture lands near the same hash, and
//! hostile input gets a typed error, never a panic.

use crate::common;

use common::*;
use vigie::bits::Hash256;
use vigie::hashing::decode::{self, DecodeLimits};
use vigie::hashing::{
    AlgorithmSet, DecodeErrorKind, Dihedral, HasherBuilder, ImageHasher, LimitCheck,
};

fn pdq_of(hasher: &ImageHasher, name: &str) -> Hash256 {
    let h = hasher
        .hash_bytes(&read_fixture(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    h.pdq.expect("pdq").hash
}

#[test]
fn every_format_and_mode_hashes_the_same_picture() {
    let hasher = HasherBuilder::new().build();
    let reference = pdq_of(&hasher, "formats/reference.png");
    let small_reference = pdq_of(&hasher, "formats/small-reference.png");
    // (fixture, reference it was made from, largest distance allowed)
    let cases = [
        ("formats/baseline.jpg", reference, 8),
        ("formats/progressive.jpg", reference, 8),
        ("formats/cmyk.jpg", reference, 8),
        ("formats/grey.png", reference, 4),
        ("formats/grey16.png", reference, 4),
        // Palette and GIF fixtures were quantised to 256 colours when made: the loss is in the file.
        ("formats/palette.png", reference, 16),
        ("formats/grey-alpha.png", reference, 4),
        ("formats/lossy.webp", reference, 12),
        ("formats/lossy-alpha.webp", reference, 12),
        ("formats/lossless.webp", reference, 0),
        ("formats/two-frames.gif", reference, 16),
        ("formats/exif-orientation-6.jpg", reference, 8),
        ("formats/small.bmp", small_reference, 0),
        ("formats/small-lzw.tiff", small_reference, 0),
    ];
    let mut report = Vec::new();
    for (name, expected, max) in cases {
        let d = pdq_of(&hasher, name).distance(&expected);
        report.push(format!("{name}: {d}"));
        assert!(
            d <= max,
            "{name}: {d} bits from its reference (at most {max})\n{}",
            report.join("\n")
        );
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn gif_hashes_its_first_frame() {
    // The second frame is the negative: its hash would be ~256 bits away.
    let hasher = HasherBuilder::new().build();
    let gif = pdq_of(&hasher, "formats/two-frames.gif");
    let reference = pdq_of(&hasher, "formats/reference.png");
    assert!(
        gif.distance(&reference) <= 16,
        "{}",
        gif.distance(&reference)
    );
    let mut negative = reference;
    negative.0.iter_mut().for_each(|w| *w = !*w);
    assert!(gif.distance(&negative) > 200);
}

#[test]
fn exif_orientation_is_applied_before_hashing() {
    let hasher = HasherBuilder::new().dihedral(true).build();
    let h = hasher
        .hash_bytes(&read_fixture("formats/exif-orientation-6.jpg"))
        .expect("hash");
    assert_eq!(h.orientation, Dihedral::Rotate90);
    // Stored 144x256, displayed 256x144.
    assert_eq!((h.width, h.height), (256, 144));
    // Meta's rule hashes the stored pixels: the same pixels saved losslessly without EXIF.
    let meta = h
        .pdq_meta
        .expect("an EXIF-rotated file carries the hash under Meta's rule")
        .hash;
    let stored =
        image::load_from_memory(&read_fixture("formats/exif-orientation-6.jpg")).expect("decode");
    assert_eq!(
        (stored.width(), stored.height()),
        (144, 256),
        "image::load applies no orientation"
    );
    let mut png = Vec::new();
    stored
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("encode");
    let stored_hash = hasher.hash_bytes(&png).expect("hash");
    assert!(stored_hash.pdq_meta.is_none());
    assert!(meta.distance(&stored_hash.pdq.expect("pdq").hash) <= 2);
    // Of the displayed picture's eight dihedral hashes, the one that undoes the rotation is the
    // nearest to Meta's. (On a picture this small PDQ's even-width box filter and sampling grid are
    // not mirror-symmetric, so "nearest" is the claim, not "equal".)
    let dihedral = h.pdq_dihedral.expect("dihedral");
    let nearest = (0..8)
        .min_by_key(|&i| dihedral[i].hash.distance(&meta))
        .expect("eight");
    assert_eq!(Dihedral::ALL[nearest], Dihedral::Rotate270);
    assert!(meta.distance(&h.pdq.expect("pdq").hash) > 31);
}

#[test]
fn phash_and_dhash_see_the_same_picture_across_formats() {
    let hasher = HasherBuilder::new().build();
    let reference = hasher
        .hash_bytes(&read_fixture("formats/reference.png"))
        .expect("hash");
    for name in [
        "formats/baseline.jpg",
        "formats/exif-orientation-6.jpg",
        "formats/lossy.webp",
        "formats/grey.png",
    ] {
        let h = hasher.hash_bytes(&read_fixture(name)).expect("hash");
        let dp = h
            .phash
            .expect("phash")
            .distance(&reference.phash.expect("phash"));
        let dd = h
            .dhash
            .expect("dhash")
            .distance(&reference.dhash.expect("dhash"));
        assert!(dp <= 6 && dd <= 6, "{name}: phash {dp}, dhash {dd}");
    }
}

// ---- hostile input ----

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
}

/// A PNG whose IHDR claims `width` x `height` 8-bit RGB, followed by one tiny IDAT chunk: what an
/// attacker sends to make a server allocate a huge buffer for a few bytes.
fn png_header_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png_chunk(&mut png, b"IHDR", &ihdr);
    png_chunk(&mut png, b"IDAT", &[0x78, 0x9c, 0x03, 0x00]);
    png
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn a_huge_header_is_refused_before_any_pixel_is_allocated() {
    let png = png_header_claiming(60_000, 60_000);
    let e = decode::read_header(&png, &DecodeLimits::default()).expect_err("refused");
    assert_eq!(e.kind, DecodeErrorKind::TooLarge);
    assert_eq!(e.limit, Some(LimitCheck::Pixels), "{e}");
    // Through the full hasher too: the same check refuses it, and there is no pixel data to read.
    let e = HasherBuilder::new()
        .build()
        .hash_bytes(&png)
        .expect_err("refused");
    assert_eq!(
        (e.kind, e.limit),
        (DecodeErrorKind::TooLarge, Some(LimitCheck::Pixels))
    );
}

#[test]
fn a_decompression_bomb_is_refused_from_its_header() {
    // 20000x20000 black pixels compress to a few hundred kilobytes but would take 1.2 GB decoded.
    let width = 20_000u32;
    let mut encoder_out = Vec::new();
    {
        // Build the bomb row by row through a streaming PNG writer so the test itself stays small.
        let row = vec![0u8; width as usize];
        let mut enc = png::Encoder::new(&mut encoder_out, width, width);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_compression(png::Compression::Fast);
        let mut writer = enc.write_header().expect("header");
        let mut stream = writer.stream_writer().expect("stream");
        for _ in 0..width {
            std::io::Write::write_all(&mut stream, &row).expect("row");
        }
        stream.finish().expect("finish");
    }
    assert!(
        encoder_out.len() < 2_000_000,
        "bomb is {} bytes",
        encoder_out.len()
    );
    let e = HasherBuilder::new()
        .build()
        .hash_bytes(&encoder_out)
        .expect_err("refused");
    assert_eq!(
        (e.kind, e.limit),
        (DecodeErrorKind::TooLarge, Some(LimitCheck::Pixels)),
        "{e}"
    );
}

#[test]
fn the_decoder_memory_limit_is_checked_from_the_header() {
    // 4000x4000 RGB is under the pixel limit but needs 48 MB to decode: refuse it at 16 MiB.
    let limits = DecodeLimits {
        max_decoder_memory: 16 << 20,
        ..DecodeLimits::default()
    };
    let e = decode::read_header(&png_header_claiming(4000, 4000), &limits).expect_err("refused");
    assert_eq!(
        (e.kind, e.limit),
        (DecodeErrorKind::TooLarge, Some(LimitCheck::DecoderMemory)),
        "{e}"
    );
}

#[test]
fn the_encoded_size_limit_comes_first() {
    let limits = DecodeLimits {
        max_encoded_bytes: 1000,
        ..DecodeLimits::default()
    };
    let hasher = HasherBuilder::new().limits(limits).build();
    let e = hasher
        .hash_bytes(&read_fixture("bridge.jpg"))
        .expect_err("refused");
    assert_eq!(
        (e.kind, e.limit),
        (DecodeErrorKind::TooLarge, Some(LimitCheck::EncodedBytes))
    );
}

#[test]
fn empty_and_non_image_input_get_typed_errors() {
    let hasher = HasherBuilder::new().build();
    assert_eq!(
        hasher.hash_bytes(b"").expect_err("empty").kind,
        DecodeErrorKind::Empty
    );
    for not_an_image in [
        &b"hello, this is text"[..],
        b"%PDF-1.7\n...",
        b"\x00\x00\x00\x00",
        b"GIF",
    ] {
        let e = hasher.hash_bytes(not_an_image).expect_err("refused");
        assert_eq!(
            e.kind,
            DecodeErrorKind::UnsupportedFormat,
            "{not_an_image:?}: {e}"
        );
    }
    // A header with zero width is corrupt.
    let e = hasher
        .hash_bytes(&png_header_claiming(0, 10))
        .expect_err("refused");
    assert_eq!(e.kind, DecodeErrorKind::Corrupt, "{e}");
}

fn all_fixtures() -> Vec<(String, Vec<u8>)> {
    let mut names = vec!["bridge.jpg".to_string(), "tux_747.png".to_string()];
    // Every format, every JPEG layout and coding, the animations and alpha variants.
    for dir in ["formats", "jpeg-family", "viewer"] {
        for entry in std::fs::read_dir(fixture(dir)).expect("fixtures") {
            let name = entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned();
            names.push(format!("{dir}/{name}"));
        }
    }
    names.sort();
    names
        .into_iter()
        .map(|n| (n.clone(), read_fixture(&n)))
        .collect()
}

/// Small deterministic generator, so a failure names a reproducible case.
struct SplitMix(u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[test]
fn truncated_flipped_and_random_bytes_never_panic() {
    let hasher = HasherBuilder::new()
        .algorithms(AlgorithmSet::parse("pdq,phash,dhash").expect("algos"))
        .build();
    let mut rng = SplitMix(42);
    let mut outcomes = std::collections::BTreeMap::<&'static str, usize>::new();
    let mut record = |r: Result<vigie::hashing::ImageHashes, vigie::hashing::DecodeError>| {
        let key = match r {
            Ok(_) => "ok",
            Err(e) => e.kind.as_str(),
        };
        *outcomes.entry(key).or_default() += 1;
    };
    for (name, bytes) in all_fixtures() {
        // Truncated at 40 offsets spread over the file, including inside the header.
        for k in 0..40usize {
            let cut = (bytes.len() * k) / 40;
            let r = hasher.hash_bytes(&bytes[..cut]);
            if cut == 0 {
                assert_eq!(
                    r.as_ref().err().map(|e| e.kind),
                    Some(DecodeErrorKind::Empty),
                    "{name}"
                );
            }
            record(r);
        }
        // 30 copies with a few flipped bytes each.
        for _ in 0..30 {
            let mut damaged = bytes.clone();
            for _ in 0..4 {
                let i = (rng.next() % damaged.len() as u64) as usize;
                damaged[i] ^= (rng.next() % 255 + 1) as u8;
            }
            record(hasher.hash_bytes(&damaged));
        }
    }
    // Random bytes, some behind a real magic number so the decoders themselves are exercised.
    let magics: [&[u8]; 6] = [
        b"\xff\xd8\xff\xe0",
        b"\x89PNG\r\n\x1a\n",
        b"RIFF\x00\x01\x00\x00WEBPVP8 ",
        b"GIF89a",
        b"BM",
        b"II*\x00",
    ];
    for i in 0..300 {
        let len = (rng.next() % 4096) as usize;
        let mut junk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if i % 2 == 0 {
            let magic = magics[i / 2 % magics.len()];
            junk.splice(0..0, magic.iter().copied());
        }
        let r = hasher.hash_bytes(&junk);
        assert!(r.is_err() || len > 0, "random bytes decoded");
        record(r);
    }
    eprintln!("outcomes: {outcomes:?}");
    assert!(
        outcomes.get("corrupt").copied().unwrap_or(0) > 100,
        "{outcomes:?}"
    );
}
