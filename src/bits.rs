//! Fixed-width bit strings: the common currency of hashes, index and banks.
//!
//! Bit `k` of a `Bits<W>` lives in word `k / 64` at position `k % 64`, so the value reads as one
//! `64 * W`-bit unsigned integer with word 0 least significant. Its hex text prints that integer
//! big-endian, most significant word first. For PDQ this is exactly Meta's text form: Meta's
//! `Hash256` keeps bit `k` in 16-bit word `k / 16` and prints words 15 down to 0 as `%04x`, which is
//! the same integer printed the same way. For the 64-bit hashes the text is the hex of the hash's
//! bytes in order (the integer is the bytes read big-endian).

use std::fmt;

/// A hash of `64 * W` bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bits<const W: usize>(pub [u64; W]);

/// A 256-bit hash (PDQ).
pub type Hash256 = Bits<4>;
/// A 64-bit hash (pHash, dHash).
pub type Hash64 = Bits<1>;

/// Why a hex string is not a hash of the expected width.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    /// The text is not exactly `HEX_LEN` (`16 * W`) digits long.
    #[error("expected {expected} hex digits, got {got}")]
    Length {
        /// Digits the width needs: `16 * W`.
        expected: usize,
        /// Characters (not bytes) the text has.
        got: usize,
    },
    /// A byte of the text is not `0-9`, `a-f` or `A-F`.
    #[error("character {position} is not a hex digit")]
    NotHex {
        /// Byte offset of the first offending byte, 0 at the left (most significant) end.
        position: usize,
    },
}

impl<const W: usize> Bits<W> {
    /// Width in bits.
    pub const BITS: u32 = 64 * W as u32;
    /// Length of the hex text form.
    pub const HEX_LEN: usize = 16 * W;

    /// The all-zero hash (every bit clear); also the `Default`.
    pub const fn zero() -> Self {
        Bits([0; W])
    }

    /// Hamming distance: the number of differing bits.
    #[inline]
    pub fn distance(&self, other: &Self) -> u32 {
        let mut d = 0;
        for i in 0..W {
            d += (self.0[i] ^ other.0[i]).count_ones();
        }
        d
    }

    /// Bit `k` (0-based, word `k / 64`, position `k % 64`; see the module doc for the order).
    /// Panics if `k >= 64 * W`: callers pass bit positions of their own width, never input.
    #[inline]
    pub fn bit(&self, k: usize) -> bool {
        (self.0[k / 64] >> (k % 64)) & 1 == 1
    }

    /// Sets bit `k` to 1 (same numbering and bound as [`Bits::bit`]).
    #[inline]
    pub fn set_bit(&mut self, k: usize) {
        self.0[k / 64] |= 1 << (k % 64);
    }

    /// Inverts bit `k` (same numbering and bound as [`Bits::bit`]); the result is at Hamming
    /// distance 1 from the original.
    #[inline]
    pub fn flip_bit(&mut self, k: usize) {
        self.0[k / 64] ^= 1 << (k % 64);
    }

    /// Number of set bits.
    pub fn count_ones(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }

    /// `len` (1..=32) bits starting at bit `start`, as the low bits of a `u32`.
    /// The substring may straddle two words.
    #[inline]
    pub fn substring(&self, start: usize, len: usize) -> u32 {
        debug_assert!((1..=32).contains(&len) && start + len <= Self::BITS as usize);
        let word = start / 64;
        let offset = start % 64;
        let mut v = self.0[word] >> offset;
        if offset + len > 64 {
            v |= self.0[word + 1] << (64 - offset);
        }
        (v & ((1u64 << len) - 1)) as u32
    }

    /// Parse the hex text form (upper or lower case, exactly `HEX_LEN` digits).
    pub fn from_hex(text: &str) -> Result<Self, HexError> {
        let bytes = text.as_bytes();
        if bytes.len() != Self::HEX_LEN {
            return Err(HexError::Length {
                expected: Self::HEX_LEN,
                got: text.chars().count(),
            });
        }
        let mut words = [0u64; W];
        for (position, &c) in bytes.iter().enumerate() {
            let nibble = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => return Err(HexError::NotHex { position }),
            };
            // Text position 0 is the most significant nibble of the most significant word.
            let word = W - 1 - position / 16;
            words[word] = (words[word] << 4) | u64::from(nibble);
        }
        Ok(Bits(words))
    }

    /// The hex text form, lower case.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(Self::HEX_LEN);
        for w in self.0.iter().rev() {
            s.push_str(&format!("{w:016x}"));
        }
        s
    }
}

impl<const W: usize> Bits<W> {
    /// From `8 * W` bytes read as one big-endian integer, so the hex text is the bytes in order
    /// (the form digests such as MD5 and SHA-256 are printed in). `None` for any other length.
    pub fn from_be_slice(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 8 * W {
            return None;
        }
        let mut words = [0u64; W];
        for (i, chunk) in bytes.chunks_exact(8).enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            words[W - 1 - i] = u64::from_be_bytes(b);
        }
        Some(Bits(words))
    }
}

impl Hash64 {
    /// A 64-bit hash from its 8 bytes (as `image_hasher` gives them).
    pub fn from_bytes(bytes: [u8; 8]) -> Self {
        Bits([u64::from_be_bytes(bytes)])
    }
}

impl<const W: usize> Default for Bits<W> {
    fn default() -> Self {
        Self::zero()
    }
}

impl<const W: usize> fmt::Display for Bits<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl<const W: usize> fmt::Debug for Bits<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bits({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_bit_order() {
        // Bit 0 is the last hex digit's low bit; bit 255 the first digit's high bit.
        let mut h = Hash256::zero();
        h.set_bit(0);
        h.set_bit(255);
        let hex = h.to_hex();
        assert_eq!(hex.len(), 64);
        assert!(hex.starts_with('8'));
        assert!(hex.ends_with('1'));
        assert_eq!(Hash256::from_hex(&hex), Ok(h));
        let upper = hex.to_uppercase();
        assert_eq!(Hash256::from_hex(&upper), Ok(h));
    }

    #[test]
    fn meta_word_order() {
        // Meta prints 16-bit word 15 first; bit 16 is the low bit of word 1, i.e. hex digit 60 from the left.
        let mut h = Hash256::zero();
        h.set_bit(16);
        assert_eq!(&h.to_hex()[56..], "00010000");
    }

    #[test]
    fn malformed_hex_is_refused() {
        assert_eq!(
            Hash64::from_hex("abc"),
            Err(HexError::Length {
                expected: 16,
                got: 3
            })
        );
        assert_eq!(
            Hash64::from_hex("000000000000000g"),
            Err(HexError::NotHex { position: 15 })
        );
        assert!(Hash64::from_hex("00000000000000é").is_err());
    }

    #[test]
    fn distance_and_substrings() {
        let a = Hash256::from_hex(&"f".repeat(64)).unwrap();
        let b = Hash256::zero();
        assert_eq!(a.distance(&b), 256);
        assert_eq!(a.distance(&a), 0);
        let mut c = Hash256::zero();
        c.set_bit(63);
        c.set_bit(64);
        // A 2-bit substring straddling words 0 and 1.
        assert_eq!(c.substring(63, 2), 0b11);
        assert_eq!(c.substring(62, 4), 0b0110);
        assert_eq!(
            Hash64::from_bytes([0x12, 0x34, 0, 0, 0, 0, 0xab, 0xcd]).to_hex(),
            "123400000000abcd"
        );
    }
}
