//! Image decoding in every accepted format (JPEG, PNG/APNG, WebP, GIF, BMP, TIFF), as an upload
//! or a banked picture goes through it: the header check, the pure-Rust JPEG layout parser
//! (`hashing::jpeg`), decoding for hashing (JPEGs by libjpeg-turbo at a reduced scale, the others
//! by the `image` crate), every hash a screen computes (PDQ with its rotations and mirrors, the
//! content boxes, keypoints, pHash, dHash, MD5, SHA-256, an animation's frames), then what a bank
//! entry computes (crop windows, keypoints) and a full-size decode.
//!
//! Any input must give hashes or a typed `DecodeError`; a panic or a sanitizer report is a bug.
//! libjpeg-turbo is a C library linked as it is installed: it runs under the sanitizer's
//! allocator but is not instrumented itself (see docs/FUZZING.md).
//!
//! Shared by the fuzz target (`fuzz/fuzz_targets/decode_image.rs`) and the regression tests
//! (`tests/fuzz/main.rs`), so that a crash found here is replayed by the same code.
use std::sync::OnceLock;

use vigie::hashing::decode::{self, DecodeLimits};
use vigie::hashing::{DEFAULT_DECODE_MIN_SIDE, HashingSetup, ImageHasher, jpeg};

/// Smaller than the service's defaults (32 MiB, 100 MP, 1 GiB) so that one input stays within
/// libFuzzer's memory limit and its time per input: the limit checks themselves are exercised
/// the same way at any size.
const LIMITS: DecodeLimits = DecodeLimits {
    max_encoded_bytes: 8 << 20,
    max_pixels: 4_000_000,
    max_decoder_memory: 256 << 20,
};

fn hashers() -> &'static (ImageHasher, ImageHasher) {
    static HASHERS: OnceLock<(ImageHasher, ImageHasher)> = OnceLock::new();
    HASHERS.get_or_init(|| {
        let setup = HashingSetup {
            keypoints: true,
            decode_min_side: Some(DEFAULT_DECODE_MIN_SIDE),
            limits: LIMITS,
        };
        (setup.screening(), setup.banking())
    })
}

/// Runs one input; panics on a bug (see the module doc).
pub fn check(data: &[u8]) {
    let (screening, banking) = hashers();
    let header = decode::read_header(data, &LIMITS);
    let _ = jpeg::read_layout(data);
    let screened = screening.hash_bytes(data);
    if header.is_err() && screened.is_ok() {
        panic!("hashed an image whose header was refused: {header:?}");
    }
    if screened.is_ok() {
        // The bank's hasher refuses damaged files, which a screen hashes with a warning.
        let _ = banking.hash_bytes(data);
        let _ = decode::decode(data, &LIMITS);
    }
}
