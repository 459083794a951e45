//! Seeded synthetic hashes, banks and queries for the benchmarks (`vigie bench lookup|store|service`,
//! the criterion benches) and the index's property tests.
//!
//! The generator is vigie's own SplitMix64 (Steele, Lea, Flood, "Fast Splittable Pseudorandom
//! Number Generators", OOPSLA 2014) so a seed gives the same bank on every platform and with every
//! version of every dependency.

use crate::bits::Bits;

/// SplitMix64: a 64-bit state advanced by the golden-ratio increment, output through a mixer.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator whose state starts at `seed`; equal seeds give equal sequences everywhere.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 uniform bits: the state advanced by `0x9E37_79B9_7F4A_7C15`, then mixed by
    /// two xor-shift-multiply rounds and a last xor-shift.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (multiply-shift; the bias is below 2^-32 for the sizes used here).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A uniform random `64 * W`-bit hash (`W` draws, word 0 first).
    pub fn hash<const W: usize>(&mut self) -> Bits<W> {
        Bits(std::array::from_fn(|_| self.next_u64()))
    }

    /// `hash` with exactly `k` distinct bits flipped (`k` at most the width).
    pub fn flip<const W: usize>(&mut self, hash: &Bits<W>, k: u32) -> Bits<W> {
        let bits = u64::from(Bits::<W>::BITS);
        let mut out = *hash;
        let mut flipped = 0;
        while flipped < k.min(Bits::<W>::BITS) {
            let pos = self.below(bits) as usize;
            if out.bit(pos) == hash.bit(pos) {
                out.flip_bit(pos);
                flipped += 1;
            }
        }
        out
    }
}

/// What a synthetic bank looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BankKind {
    /// Independent uniform hashes: the worst case for the tables' bucket sizes being even, the
    /// case the latency targets are stated on.
    Uniform,
    /// Families of near-duplicates, as real ad banks hold many reposts of one picture: half the
    /// families are single hashes, most others hold 2-65 members, one in ten 2-1001; a member is
    /// the family's base with up to `width/16` bits flipped (one in ten an exact copy).
    NearDuplicates,
}

impl BankKind {
    /// The kind's kebab-case name (`uniform`, `near-duplicates`), as benchmark options and
    /// reports spell it.
    pub fn name(self) -> &'static str {
        match self {
            BankKind::Uniform => "uniform",
            BankKind::NearDuplicates => "near-duplicates",
        }
    }
}

/// `n` hashes of the given kind, in shuffled order.
pub fn bank<const W: usize>(kind: BankKind, n: usize, rng: &mut SplitMix64) -> Vec<Bits<W>> {
    let mut out = Vec::with_capacity(n);
    match kind {
        BankKind::Uniform => out.extend((0..n).map(|_| rng.hash())),
        BankKind::NearDuplicates => {
            let max_flips = u64::from(Bits::<W>::BITS / 16);
            while out.len() < n {
                let base: Bits<W> = rng.hash();
                let size = match rng.below(10) {
                    0..=4 => 1,
                    5..=8 => 2 + rng.below(64),
                    _ => 2 + rng.below(1000),
                };
                for _ in 0..size.min((n - out.len()) as u64) {
                    let flips = if rng.below(10) == 0 {
                        0
                    } else {
                        rng.below(max_flips + 1) as u32
                    };
                    let member = rng.flip(&base, flips);
                    out.push(member);
                }
            }
            // Fisher-Yates, so families are not laid out contiguously in memory.
            for i in (1..out.len()).rev() {
                let j = rng.below(i as u64 + 1) as usize;
                out.swap(i, j);
            }
        }
    }
    out
}

/// `count` queries: even ones planted near a random bank hash (0..=radius bits flipped), odd ones
/// uniform.
pub fn queries<const W: usize>(
    bank: &[Bits<W>],
    count: usize,
    radius: u32,
    rng: &mut SplitMix64,
) -> Vec<Bits<W>> {
    (0..count)
        .map(|i| {
            if i.is_multiple_of(2) && !bank.is_empty() {
                let near = bank[rng.below(bank.len() as u64) as usize];
                let k = rng.below(u64::from(radius) + 1) as u32;
                rng.flip(&near, k)
            } else {
                rng.hash()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_is_reproducible() {
        // First outputs of SplitMix64 seeded with 0, as published with the algorithm.
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn flip_flips_exactly_k_bits() {
        let mut rng = SplitMix64::new(7);
        let h: Bits<4> = rng.hash();
        for k in [0, 1, 5, 31, 256] {
            assert_eq!(rng.flip(&h, k).distance(&h), k);
        }
    }

    #[test]
    fn near_duplicate_bank_has_families() {
        let mut rng = SplitMix64::new(1);
        let b: Vec<Bits<4>> = bank(BankKind::NearDuplicates, 5000, &mut rng);
        assert_eq!(b.len(), 5000);
        let close = (1..200)
            .filter(|&i| b.iter().any(|h| h != &b[i] && h.distance(&b[i]) <= 16))
            .count();
        assert!(close > 50, "only {close} of 199 hashes have a relative");
    }
}
