//! The 64-bit perceptual hashes, through `image_hasher` (the maintained continuation of `img_hash`).
//!
//! Each hash is pinned to one exact `HasherConfig`: a hash bank is only as good as the promise that
//! the same picture hashes the same way next year. `tests/hash_stability.rs` fails with the Hamming
//! drift if an upgrade of `image_hasher` or `image` changes either hash.

use image::DynamicImage;
use image::imageops::FilterType;
use image_hasher::{BitOrder, HashAlg, Hasher, HasherConfig};

use crate::bits::Hash64;

/// pHash: the picture reduced to greyscale and resized to 16x16 with Lanczos3 (`hash_size` 8x8
/// with the DCT preprocessing doubles each side), a 2-D DCT, the top-left 8x8 coefficients
/// compared with their mean: 64 bits. This is the classic DCT pHash (Zauner, "Implementation and
/// Benchmarking of Perceptual Image Hash Functions", 2010) as `image_hasher` implements it.
pub fn phash_config() -> HasherConfig<[u8; 8]> {
    base_config().hash_alg(HashAlg::Mean).preproc_dct()
}

/// dHash: greyscale, resized to 9x8 with Lanczos3, each bit says whether a pixel is brighter than
/// its right-hand neighbour (Krawetz, "Kind of Like That", 2013): 64 bits.
pub fn dhash_config() -> HasherConfig<[u8; 8]> {
    base_config().hash_alg(HashAlg::Gradient)
}

/// What both hashes share: 8x8 = 64 bits in an inline 8-byte container, Lanczos3 resizing, bits
/// packed least significant first within each byte (`image_hasher`'s default, pinned here so a
/// change of default cannot move the hashes).
fn base_config() -> HasherConfig<[u8; 8]> {
    HasherConfig::with_bytes_type::<[u8; 8]>()
        .hash_size(8, 8)
        .resize_filter(FilterType::Lanczos3)
        .bit_order(BitOrder::LsbFirst)
}

/// Ready-built hashers for both 64-bit hashes (building one computes DCT tables: do it once).
pub struct Perceptual64 {
    phash: Hasher<[u8; 8]>,
    dhash: Hasher<[u8; 8]>,
}

impl Default for Perceptual64 {
    fn default() -> Self {
        Perceptual64 { phash: phash_config().to_hasher(), dhash: dhash_config().to_hasher() }
    }
}

impl Perceptual64 {
    pub fn phash(&self, picture: &DynamicImage) -> Hash64 {
        Hash64::from_bytes(self.phash.hash_image(picture).into_inner())
    }

    pub fn dhash(&self, picture: &DynamicImage) -> Hash64 {
        Hash64::from_bytes(self.dhash.hash_image(picture).into_inner())
    }
}
