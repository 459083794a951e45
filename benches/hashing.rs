//! Hashing speed: each hash on a decoded 512x512 picture, and decode plus every hash for JPEGs of
//! 0.5, 2 and 12 megapixels and a PNG. Pictures come from `../shared/corpus` when it is there (a
//! real 12 MP photo), else from the bridge fixture scaled up; they are encoded in memory.
//!
//! `cargo bench --bench hashing`

use std::hint::black_box;
use std::io::Cursor;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use image::{DynamicImage, ImageFormat, imageops::FilterType};
use vigie::hashing::{
    AlgorithmSet, AlphaRule, HasherBuilder, exact, luma_plane, pdq, perceptual64::Perceptual64,
};

fn source_picture() -> DynamicImage {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let large = root.join("../shared/corpus/lomiri_Dragonfly_by_Bolly_large.jpg");
    let bytes = std::fs::read(&large).unwrap_or_else(|_| {
        eprintln!("../shared/corpus absent: using the bridge fixture scaled up");
        std::fs::read(root.join("tests/fixtures/bridge.jpg")).expect("fixture")
    });
    image::load_from_memory(&bytes).expect("decode source")
}

fn encode(picture: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    match format {
        ImageFormat::Jpeg => {
            let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
            picture
                .to_rgb8()
                .write_with_encoder(enc)
                .expect("encode jpeg");
        }
        _ => picture
            .write_to(&mut Cursor::new(&mut out), format)
            .expect("encode"),
    }
    out
}

fn bench_hashes(c: &mut Criterion) {
    let source = source_picture();
    let picture = source.resize_exact(512, 512, FilterType::Triangle);
    let bytes = encode(&picture, ImageFormat::Jpeg);
    let p64 = Perceptual64::default();
    let mut g = c.benchmark_group("hash_512x512");
    g.bench_function("luma", |b| {
        b.iter(|| luma_plane(black_box(&picture), AlphaRule::CompositeOnWhite))
    });
    let luma = luma_plane(&picture, AlphaRule::CompositeOnWhite);
    g.bench_function("pdq", |b| b.iter(|| pdq::pdq_hash(black_box(&luma))));
    g.bench_function("pdq_with_8_dihedral", |b| {
        b.iter(|| pdq::pdq_coefficients(black_box(&luma)).all_dihedral_hashes())
    });
    g.bench_function("phash", |b| b.iter(|| p64.phash(black_box(&picture))));
    g.bench_function("dhash", |b| b.iter(|| p64.dhash(black_box(&picture))));
    g.bench_function("md5", |b| b.iter(|| exact::md5(black_box(&bytes))));
    g.bench_function("sha256", |b| b.iter(|| exact::sha256(black_box(&bytes))));
    g.finish();
}

fn bench_decode_and_hash(c: &mut Criterion) {
    let source = source_picture();
    let sized = |w: u32, h: u32| source.resize_exact(w, h, FilterType::Triangle);
    let cases = [
        (
            "jpeg_0.5MP_816x612",
            encode(&sized(816, 612), ImageFormat::Jpeg),
        ),
        (
            "jpeg_2MP_1632x1224",
            encode(&sized(1632, 1224), ImageFormat::Jpeg),
        ),
        (
            "jpeg_12MP_4000x3000",
            encode(&sized(4000, 3000), ImageFormat::Jpeg),
        ),
        (
            "png_0.5MP_816x612",
            encode(&sized(816, 612), ImageFormat::Png),
        ),
    ];
    let all = HasherBuilder::new().build();
    let pdq_only = HasherBuilder::new()
        .algorithms(AlgorithmSet::parse("pdq").expect("algos"))
        .build();
    let mut g = c.benchmark_group("decode_and_hash");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    for (name, bytes) in &cases {
        g.bench_function(format!("{name}/all"), |b| {
            b.iter(|| all.hash_bytes(black_box(bytes)).expect("hash"))
        });
        g.bench_function(format!("{name}/pdq"), |b| {
            b.iter(|| pdq_only.hash_bytes(black_box(bytes)).expect("hash"))
        });
        g.bench_function(format!("{name}/decode"), |b| {
            b.iter(|| {
                vigie::hashing::decode::decode(black_box(bytes), all.limits()).expect("decode")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_hashes, bench_decode_and_hash);
criterion_main!(benches);
