//! Criterion: single-query lookup latency of the Hamming index at 100k and 1M entries, 256-bit
//! hashes at radius 31 and 64-bit hashes at radius 10, uniform banks, half the queries planted
//! near stored hashes. 10M entries live in `vigie bench lookup`, not here.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use vigie::bench::synth::{self, BankKind, SplitMix64};
use vigie::bits::Bits;
use vigie::index::HammingIndex;

fn bench_width<const W: usize>(c: &mut Criterion, radius: u32) {
    let mut group = c.benchmark_group(format!("lookup_{}bit_r{radius}", Bits::<W>::BITS));
    for n in [100_000usize, 1_000_000] {
        let mut rng = SplitMix64::new(n as u64);
        let bank: Vec<Bits<W>> = synth::bank(BankKind::Uniform, n, &mut rng);
        let queries = synth::queries(&bank, 256, radius, &mut rng);
        let index =
            HammingIndex::<W>::from_entries(bank.iter().copied().zip(0..)).expect("index fits");
        let mut next = 0;
        group.bench_with_input(BenchmarkId::new("vigie", n), &n, |b, _| {
            b.iter(|| {
                next = (next + 1) % queries.len();
                black_box(index.search(black_box(&queries[next]), radius))
            })
        });
    }
    group.finish();
}

fn lookup(c: &mut Criterion) {
    bench_width::<4>(c, 31);
    bench_width::<1>(c, 10);
}

criterion_group!(benches, lookup);
criterion_main!(benches);
