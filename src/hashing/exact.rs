//! Exact hashes of the bytes as received: they match only byte-identical files, but they are what
//! hotlines such as NCMEC share alongside perceptual hashes, and they cost almost nothing.

use md5::{Digest, Md5};
use sha2::Sha256;

use crate::bits::{Bits, Hash256};

/// A 128-bit MD5 digest.
pub type Md5Hash = Bits<2>;

pub fn md5(bytes: &[u8]) -> Md5Hash {
    // A 16-byte digest always fits Bits<2>.
    Bits::from_be_slice(Md5::digest(bytes).as_slice()).unwrap_or_default()
}

pub fn sha256(bytes: &[u8]) -> Hash256 {
    // A 32-byte digest always fits Bits<4>.
    Bits::from_be_slice(Sha256::digest(bytes).as_slice()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        assert_eq!(md5(b"").to_hex(), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(sha256(b"abc").to_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
