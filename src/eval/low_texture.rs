//! Low-texture pictures for `vigie eval`'s negatives: smooth gradients, skies, dark scenes,
//! sunsets, plain walls. Such pictures have little for a hash to hold on to (PDQ quality well
//! under 50), so their 64-bit hashes sit close to many others'; issue 17 saw a smooth wallpaper
//! match an unrelated photo at dHash 5, and a vignette pull unrelated photos onto such pictures.
//! Each picture is synthesised from its index alone (seeded), so every run sees the same ones.

use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng, rngs::StdRng};

/// The kinds, in the order indices cycle through them.
pub const KINDS: [&str; 6] = ["gradient", "radial", "sky", "dark", "sunset", "wall"];

/// Picture `index`: its name (`lowtex_<index>_<kind>.jpg`) and its pixels. Kinds go in pairs
/// (indices 0 and 1 are gradients, 2 and 3 radial, ...), so that banking every other picture
/// banks one of each kind; from index 12 on, a soft wave pattern (amplitude 10 to 14 levels) adds a
/// little texture, as wallpapers and skies with haze have: PDQ quality from 0 up to about 45, the
/// range where the 64-bit hashes still match (issue 17's wallpaper was at 30). Sizes cycle through
/// 640x480, 480x640 and 600x600.
pub fn picture(index: usize) -> (String, RgbImage) {
    let kind = KINDS[index / 2 % KINDS.len()];
    let waves = if index >= 2 * KINDS.len() {
        10.0 + (index % 5) as f32
    } else {
        0.0
    };
    let (w, h) = [(640, 480), (480, 640), (600, 600)][index % 3];
    let mut rng = StdRng::seed_from_u64(0x010E_7E47u64 ^ (index as u64).wrapping_mul(0x9E37_79B9));
    let mut colour = |lo: f32, hi: f32| -> [f32; 3] {
        [
            rng.random_range(lo..hi),
            rng.random_range(lo..hi),
            rng.random_range(lo..hi),
        ]
    };
    let a = colour(40.0, 220.0);
    let b = colour(40.0, 220.0);
    let angle: f32 = StdRng::seed_from_u64(index as u64).random_range(0.0..std::f32::consts::TAU);
    let mut rng = StdRng::seed_from_u64(0xB10B ^ index as u64);
    // A few soft blobs (clouds, lights, bokeh): centre, radius, colour, strength.
    let blobs: Vec<(f32, f32, f32, f32)> = (0..3)
        .map(|_| {
            (
                rng.random_range(0.1..0.9) * w as f32,
                rng.random_range(0.1..0.7) * h as f32,
                rng.random_range(0.15..0.3) * w.max(h) as f32,
                rng.random_range(0.3..0.6),
            )
        })
        .collect();
    let glow = |x: f32, y: f32| -> f32 {
        blobs
            .iter()
            .map(|&(bx, by, r, s)| s * (-((x - bx).powi(2) + (y - by).powi(2)) / (r * r)).exp())
            .sum::<f32>()
    };
    let horizon_phase: f32 = rng.random_range(0.0..std::f32::consts::TAU);
    let mut img = RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        let mixc = |t: f32, p: [f32; 3], q: [f32; 3]| -> [f32; 3] {
            [
                p[0] + (q[0] - p[0]) * t,
                p[1] + (q[1] - p[1]) * t,
                p[2] + (q[2] - p[2]) * t,
            ]
        };
        let v = match kind {
            "gradient" => {
                let t = ((fx - 0.5) * angle.cos() + (fy - 0.5) * angle.sin() + 0.7) / 1.4;
                mixc(t.clamp(0.0, 1.0), a, b)
            }
            "radial" => {
                let d = ((fx - 0.5).powi(2) + (fy - 0.5).powi(2)).sqrt() / 0.71;
                mixc(d, a, b)
            }
            "sky" => {
                let base = mixc(fy, [70.0, 130.0, 210.0], [175.0, 205.0, 235.0]);
                let g = glow(x as f32, y as f32).min(1.0) * 0.7;
                mixc(g, base, [245.0, 245.0, 250.0])
            }
            "dark" => {
                let base = mixc(fy, [14.0, 14.0, 22.0], [30.0, 26.0, 24.0]);
                let g = glow(x as f32, y as f32).min(1.0) * 0.35;
                mixc(g, base, [120.0, 90.0, 50.0])
            }
            "sunset" => {
                let sky = mixc(fy, [250.0, 150.0, 70.0], [120.0, 60.0, 110.0]);
                // A smooth dark hill along the bottom, its edge softened over 6% of the height.
                let edge = 0.78 + 0.06 * (fx * 5.0 + horizon_phase).sin();
                let t = ((fy - edge) / 0.06 + 0.5).clamp(0.0, 1.0);
                mixc(t, sky, [40.0, 22.0, 40.0])
            }
            _ => {
                let base = mixc(
                    fx * 0.5 + fy * 0.5,
                    [205.0, 190.0, 170.0],
                    [185.0, 170.0, 150.0],
                );
                let g = glow(x as f32, y as f32).min(1.0) * 0.25;
                mixc(g, base, [240.0, 230.0, 215.0])
            }
        };
        let wave = waves
            * (std::f32::consts::TAU * (fx * 3.0 + fy * 2.0) + horizon_phase).sin()
            * (std::f32::consts::TAU * fy * 2.5).cos();
        Rgb(v.map(|c| (c + wave).round().clamp(0.0, 255.0) as u8))
    });
    // Sensor noise, as a camera's.
    for v in img.iter_mut() {
        let n: f32 = rng.random_range(-2.0..2.0);
        *v = (f32::from(*v) + n).round().clamp(0.0, 255.0) as u8;
    }
    (format!("lowtex_{index:02}_{kind}.jpg"), img)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::edits::{Encoding, encode};
    use crate::hashing::HasherBuilder;

    #[test]
    fn low_texture_pictures_are_deterministic_and_have_low_pdq_quality() {
        let hasher = HasherBuilder::new().build();
        let mut qualities = Vec::new();
        for i in 0..24 {
            let (name, img) = picture(i);
            let (again_name, again) = picture(i);
            assert_eq!((&name, &img), (&again_name, &again), "seeded");
            assert!(name.contains(KINDS[i / 2 % KINDS.len()]), "{name}");
            let bytes = encode(&img, Encoding::Jpeg(92)).unwrap();
            let h = hasher.hash_bytes(&bytes).unwrap();
            let q = h.pdq.expect("a PDQ").quality;
            qualities.push((name, q));
        }
        // Under Meta's quality floor of 50: little for a global hash to hold on to.
        assert!(qualities.iter().all(|(_, q)| *q < 50), "{qualities:?}");
        assert_ne!(picture(0).1, picture(1).1, "each index its own picture");
        // Some keep enough texture for the 64-bit hashes to be matched (their floor is 32).
        eprintln!("{qualities:?}");
        assert!(qualities.iter().any(|(_, q)| *q >= 25), "{qualities:?}");
    }
}
