//! Hashing: from untrusted image bytes to every hash vigie matches on.
//!
//! The API follows `image_hasher`: a [`HasherBuilder`] chooses algorithms and limits, builds an
//! [`ImageHasher`] once (DCT tables and all), which then hashes any number of images.
//!
//! ## Which picture is hashed
//! vigie hashes the picture *as a viewer sees it*: the EXIF orientation is applied, and a picture
//! with transparency is composited on white (the page background under nearly every ad). Edited
//! re-uploads (screenshots, recompressed JPEGs) are flattened and upright, so this is the hash they
//! meet.
//!
//! Meta's tool chain (hasher-matcher-actioner: Pillow decode, C++ PDQ) hashes the pixels as stored:
//! no EXIF orientation, and the RGB that lies under the alpha channel, whatever it is. Hash lists
//! shared through ThreatExchange, NCMEC or StopNCII carry that hash. So for any file where the two
//! rules see different pixels (transparency, or an EXIF orientation other than 1) vigie also
//! computes `pdq_meta`, the hash under Meta's rule: a screen looks up both, and a bank entry made
//! from such a file can store both, so a list from another platform still matches. For an
//! EXIF-rotated file without transparency, `pdq_meta` is also one of the dihedral hashes (up to a
//! few bits of filter asymmetry), which is how Meta's own matcher would find it. It is also what
//! screens a picture hidden under an alpha channel that shows nothing (a PNG whose alpha is all
//! 0 displays as an empty page; its stored pixels are looked up by `pdq_meta` all the same).
//! A BMP whose declared alpha is all 0 is shown opaque by every viewer, and hashed so (see
//! `decode::decode_for_hashing`).
//!
//! An animation (GIF, APNG, animated WebP) is hashed by its default image (a GIF's or WebP's
//! first frame, an APNG's IDAT image, which Meta's tool chain hashes too), and each of its
//! frames that differs from every picture already hashed gets hashes of its own
//! ([`ImageHashes::frames`]): a viewer sees the frames, and a banked picture can hide in any.

pub mod decode;
pub mod exact;
pub mod jpeg;
pub mod keypoints;
pub mod pdq;
pub mod perceptual64;
pub mod regions;
pub mod turbo;

use image::{DynamicImage, GenericImageView, GrayImage, ImageFormat};

use crate::bits::{Hash64, Hash256};
pub use decode::{DecodeError, DecodeErrorKind, DecodeLimits, LimitCheck};
pub use exact::Md5Hash;
pub use pdq::{Dihedral, LumaPlane, PdqHash};

/// A hash algorithm vigie computes and matches. The discriminant is the on-disk bit position of
/// the algorithm in a bank entry's hash mask (see `store::keys`): never renumber.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// PDQ: Meta's 256-bit perceptual hash of the displayed picture (see [`pdq`]).
    Pdq = 0,
    /// pHash: the 64-bit DCT hash (see [`perceptual64::phash_config`]).
    Phash = 1,
    /// dHash: the 64-bit gradient hash (see [`perceptual64::dhash_config`]).
    Dhash = 2,
    /// MD5 of the bytes as received: 128 bits, matched by equality (see [`exact`]).
    Md5 = 3,
    /// SHA-256 of the bytes as received: 256 bits, matched by equality (see [`exact`]).
    Sha256 = 4,
}

impl Algorithm {
    /// Every algorithm, in discriminant (hash-mask bit) order.
    pub const ALL: [Algorithm; 5] = [
        Algorithm::Pdq,
        Algorithm::Phash,
        Algorithm::Dhash,
        Algorithm::Md5,
        Algorithm::Sha256,
    ];

    /// The name used in JSON, on the command line and in the API.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Pdq => "pdq",
            Algorithm::Phash => "phash",
            Algorithm::Dhash => "dhash",
            Algorithm::Md5 => "md5",
            Algorithm::Sha256 => "sha256",
        }
    }

    /// Exactly one of the names above (any case).
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// Names other tools give the same algorithm: python-threatexchange calls PDQ `pdq` and photo
    /// digests `photo_md5`; HMA and StopNCII exports use upper case. `video_md5` is deliberately
    /// absent: a video's digest is not an image's.
    pub fn from_signal_type(text: &str) -> Option<Algorithm> {
        match text.trim().to_ascii_lowercase().as_str() {
            "pdq" => Some(Algorithm::Pdq),
            "phash" => Some(Algorithm::Phash),
            "dhash" => Some(Algorithm::Dhash),
            "md5" | "photo_md5" => Some(Algorithm::Md5),
            "sha256" | "sha-256" | "photo_sha256" => Some(Algorithm::Sha256),
            _ => None,
        }
    }

    /// Width of the hash in bits.
    pub fn bits(self) -> u32 {
        self.byte_len() as u32 * 8
    }

    /// Width of the hash in bytes (also its on-disk size).
    pub fn byte_len(self) -> usize {
        match self {
            Algorithm::Pdq | Algorithm::Sha256 => 32,
            Algorithm::Phash | Algorithm::Dhash => 8,
            Algorithm::Md5 => 16,
        }
    }

    /// Whether matching is by Hamming distance (perceptual) rather than equality; the perceptual
    /// hashes are also the ones that need decoded pixels.
    pub fn is_perceptual(self) -> bool {
        matches!(self, Algorithm::Pdq | Algorithm::Phash | Algorithm::Dhash)
    }

    /// Whether the hash needs decoded pixels (the exact hashes only need the bytes).
    pub fn needs_pixels(self) -> bool {
        self.is_perceptual()
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AlgorithmSet(u8);

impl AlgorithmSet {
    /// The set of all five algorithms ([`Algorithm::ALL`]).
    pub fn all() -> Self {
        Algorithm::ALL.into_iter().collect()
    }

    /// Whether `a` is in the set.
    pub fn contains(self, a: Algorithm) -> bool {
        self.0 & (1 << a as u8) != 0
    }

    /// Adds `a` to the set (no change if it is already there).
    pub fn insert(&mut self, a: Algorithm) {
        self.0 |= 1 << a as u8;
    }

    /// Whether the set holds no algorithm.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The algorithms in the set, in [`Algorithm::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Algorithm> {
        Algorithm::ALL
            .into_iter()
            .filter(move |a| self.contains(*a))
    }

    /// Parse a comma-separated list such as `pdq,md5`.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut set = AlgorithmSet::default();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let a = Algorithm::from_name(name).ok_or_else(|| {
                format!(
                    "unknown algorithm '{name}' (expected any of pdq, phash, dhash, md5, sha256)"
                )
            })?;
            set.insert(a);
        }
        if set.is_empty() {
            return Err("no algorithm given".into());
        }
        Ok(set)
    }
}

impl FromIterator<Algorithm> for AlgorithmSet {
    fn from_iter<I: IntoIterator<Item = Algorithm>>(iter: I) -> Self {
        let mut set = AlgorithmSet::default();
        for a in iter {
            set.insert(a);
        }
        set
    }
}

/// Chooses what an [`ImageHasher`] computes.
#[derive(Clone, Debug)]
pub struct HasherBuilder {
    algorithms: AlgorithmSet,
    dihedral: bool,
    regions: bool,
    windows: bool,
    keypoints: bool,
    frames: bool,
    limits: DecodeLimits,
    decode_min_side: Option<u32>,
}

/// The shorter side, in pixels, a JPEG keeps when it is decoded at a reduced scale for hashing (see
/// [`HasherBuilder::decode_min_side`]). Measured over Meta's reference set and the corpus
/// (`tests/hashing/pdq_reference.rs`): at 512 every reduced JPEG still hashes exactly as Meta's; at
/// 256 the 64 reduced ones are a mean 1.0 bits away (p95 4, max 6), within the hashing issue's
/// bounds, and a 2 MP JPEG hashes in 5.4 ms instead of 6.9 (`vigie bench hash`). 0 or `None` = full
/// size, identical to Meta's on every JPEG there.
pub const DEFAULT_DECODE_MIN_SIDE: u32 = 256;

impl Default for HasherBuilder {
    fn default() -> Self {
        HasherBuilder {
            algorithms: AlgorithmSet::all(),
            dihedral: false,
            regions: false,
            windows: false,
            keypoints: false,
            frames: true,
            limits: DecodeLimits::default(),
            decode_min_side: Some(DEFAULT_DECODE_MIN_SIDE),
        }
    }
}

impl HasherBuilder {
    /// The defaults: every algorithm; no rotations and mirrors, regions, windows or
    /// keypoints; [`DecodeLimits::default`]; JPEGs decoded down to [`DEFAULT_DECODE_MIN_SIDE`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Compute only these algorithms (default: all). With an empty set no hash is computed, but
    /// [`ImageHasher::hash_bytes`] still reads and checks the header.
    pub fn algorithms(mut self, algorithms: AlgorithmSet) -> Self {
        self.algorithms = algorithms;
        self
    }

    /// Also compute the PDQ hashes of the seven other rotations and mirrors.
    pub fn dihedral(mut self, dihedral: bool) -> Self {
        self.dihedral = dihedral;
        self
    }

    /// Also compute PDQ of the upload's content boxes (borders trimmed, the photo inside a
    /// screenshot), see [`regions::query_regions`]: what a screen looks up besides the whole.
    pub fn regions(mut self, regions: bool) -> Self {
        self.regions = regions;
        self
    }

    /// Also compute PDQ of the banking windows (crops), see [`regions::BANK_WINDOWS`]: what a
    /// bank entry added from pixels holds besides the whole. This is the banking hasher, and a
    /// bank entry must be of a whole picture: a file cut short or damaged (which the screening
    /// hasher hashes with [`ImageHashes::warnings`]) is refused as `corrupt`, saying why.
    pub fn windows(mut self, windows: bool) -> Self {
        self.windows = windows;
        self
    }

    /// With [`HasherBuilder::regions`], also find the upload's keypoints
    /// ([`keypoints::query_keypoints`]): off-centre crops then meet their entry (see docs/EVALUATION.md),
    /// and the PDQ trial turns are the wide ones (the keypoint vote tries turns up to 5 degrees,
    /// see [`regions::WIDE_TRIAL_TURNS_DEGREES`]). Off unless
    /// asked for here; the service turns it on by default. Banked pictures get their keypoints
    /// with [`HasherBuilder::windows`] either way, so turning this on later needs no re-banking.
    pub fn keypoints(mut self, keypoints: bool) -> Self {
        self.keypoints = keypoints;
        self
    }

    /// Also hash the frames of an animation that differ from its default image (on unless
    /// turned off here), see [`ImageHashes::frames`].
    pub fn frames(mut self, frames: bool) -> Self {
        self.frames = frames;
        self
    }

    /// Limits every image is decoded under (default [`DecodeLimits::default`]); an image over one
    /// is refused with a [`DecodeErrorKind::TooLarge`] error.
    pub fn limits(mut self, limits: DecodeLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Decode JPEGs at the largest DCT reduction (1/2, 1/4, 1/8) that keeps the shorter side at
    /// least this many pixels; `None` decodes every image at full size. PDQ reads a 64x64 summary
    /// and the 64-bit hashes a 16x16 one, so decoding 12 million pixels is waste.
    pub fn decode_min_side(mut self, min_side: Option<u32>) -> Self {
        self.decode_min_side = min_side;
        self
    }

    /// The hasher, with the 64-bit hashes' DCT tables built: build it once and share it.
    pub fn build(self) -> ImageHasher {
        ImageHasher {
            algorithms: self.algorithms,
            dihedral: self.dihedral,
            regions: self.regions,
            windows: self.windows,
            keypoints: self.keypoints,
            frames: self.frames,
            limits: self.limits,
            decode_min_side: self.decode_min_side,
            perceptual64: perceptual64::Perceptual64::default(),
        }
    }
}

/// The hasher setups vigie runs, defined once: what a screen computes of an upload, what a bank
/// entry keeps of a picture, and what a plain hash request computes. The service, the CLI and
/// `vigie eval` all build their hashers here, so that an evaluation measures exactly what a
/// `Screen` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashingSetup {
    /// Screens also find the upload's keypoints (see [`HasherBuilder::keypoints`]).
    pub keypoints: bool,
    /// JPEG decoding scale (see [`HasherBuilder::decode_min_side`]); `None` = full size.
    pub decode_min_side: Option<u32>,
    /// Decoding limits for every image.
    pub limits: DecodeLimits,
}

impl Default for HashingSetup {
    /// Keypoints on, JPEGs decoded down to [`DEFAULT_DECODE_MIN_SIDE`], default limits.
    fn default() -> Self {
        HashingSetup {
            keypoints: true,
            decode_min_side: Some(DEFAULT_DECODE_MIN_SIDE),
            limits: DecodeLimits::default(),
        }
    }
}

impl HashingSetup {
    /// The hasher for uploads to screen: every algorithm, PDQ's eight rotations and mirrors (for
    /// rotated and mirrored re-uploads), the content boxes (trimmed borders, the photo inside a
    /// screenshot), an animation's distinct frames ([`ImageHashes::frames`]) and, when on, the
    /// keypoints.
    pub fn screening(&self) -> ImageHasher {
        HasherBuilder::new()
            .dihedral(true)
            .regions(true)
            .keypoints(self.keypoints)
            .decode_min_side(self.decode_min_side)
            .limits(self.limits)
            .build()
    }

    /// The hasher for pictures added to a bank: every algorithm, the crop windows and the
    /// keypoints a bank entry keeps (see `matcher::entry_hashes`). An entry holds the picture
    /// (an animation's default image), not its frames: those are not hashed. A file cut short
    /// or damaged is refused (`corrupt`, see [`HasherBuilder::windows`]).
    pub fn banking(&self) -> ImageHasher {
        HasherBuilder::new()
            .windows(true)
            .frames(false)
            .decode_min_side(self.decode_min_side)
            .limits(self.limits)
            .build()
    }

    /// The hasher for a plain hash request (`vigie hash`, the `Hash` call): the given algorithms,
    /// with PDQ's rotations and mirrors when `dihedral`.
    pub fn plain(&self, algorithms: AlgorithmSet, dihedral: bool) -> ImageHasher {
        HasherBuilder::new()
            .algorithms(algorithms)
            .dihedral(dihedral)
            .decode_min_side(self.decode_min_side)
            .limits(self.limits)
            .build()
    }
}

/// Which of a screen's local lookups the banks can answer, so that hashing an upload leaves out
/// what no lookup would read:
///
/// - `keypoints`: some entry holds keypoints, so the upload's are found
///   ([`keypoints::query_keypoint_sets`]);
/// - `windows`: some entry holds crop windows, so the upload's trial turns are hashed (they are
///   looked up in the crop windows only; with no keypoints found, the narrow turns
///   [`regions::TRIAL_TURNS_DEGREES`] that the keypoint vote would otherwise cover).
///
/// Both come only with entries added as pictures: a bank of imported hash lists (ThreatExchange,
/// NCMEC, StopNCII) holds neither, and its screens skip about a tenth of their CPU (`vigie bench
/// service`, docs/PERFORMANCE.md). The state is read when a screen starts, so a screen that starts
/// after an entry is acknowledged looks it up as it would any other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalLookups {
    /// Some entry holds keypoints.
    pub keypoints: bool,
    /// Some entry holds crop windows.
    pub windows: bool,
}

impl LocalLookups {
    /// Every local lookup (what [`ImageHasher::hash_bytes`] hashes for).
    pub const ALL: LocalLookups = LocalLookups {
        keypoints: true,
        windows: true,
    };
}

/// Computes hashes of image bytes. Cheap to share between threads (`&self` only).
pub struct ImageHasher {
    algorithms: AlgorithmSet,
    dihedral: bool,
    regions: bool,
    windows: bool,
    keypoints: bool,
    frames: bool,
    limits: DecodeLimits,
    decode_min_side: Option<u32>,
    perceptual64: perceptual64::Perceptual64,
}

/// Everything vigie computed for one image.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageHashes {
    /// The format detected from the bytes (see [`format_name`]).
    pub format: ImageFormat,
    /// Dimensions of the picture as displayed (after the EXIF orientation).
    pub width: u32,
    /// Height of the displayed picture in pixels, at the file's full size (as `width`).
    pub height: u32,
    /// The transform from stored pixels to the displayed picture (EXIF orientation).
    pub orientation: Dihedral,
    /// Whether the decoded picture has an alpha channel (the hashes then read it
    /// composited on white); `false` when only exact hashes were asked for.
    pub has_alpha: bool,
    /// PDQ (256 bits) of the displayed picture, with [`Algorithm::Pdq`].
    pub pdq: Option<PdqHash>,
    /// PDQ of all eight rotations and mirrors, in [`Dihedral::ALL`] order (index 0 is `pdq`).
    pub pdq_dihedral: Option<[PdqHash; 8]>,
    /// PDQ under Meta's rule (stored pixels, RGB under alpha), when that differs from `pdq`'s picture.
    pub pdq_meta: Option<PdqHash>,
    /// pHash (64 bits) of the displayed picture, with [`Algorithm::Phash`].
    pub phash: Option<Hash64>,
    /// dHash (64 bits) of the displayed picture, with [`Algorithm::Dhash`].
    pub dhash: Option<Hash64>,
    /// Quality (0..=100) of the grey picture `phash` and `dhash` (and their turned variants)
    /// read, on PDQ's scale ([`perceptual64::quality`]); set with either hash. Below
    /// `matcher::MIN_64_QUALITY` the picture is too featureless for either to match on.
    pub quality64: Option<u8>,
    /// pHash and dHash of the picture mirrored and turned, in [`perceptual64::PHASH_TRANSFORMS`]
    /// and [`perceptual64::GRID_TRANSFORMS`] order (with [`HasherBuilder::dihedral`]): a mirrored
    /// re-upload that also carries a banner defeats PDQ's mirror but not these.
    pub phash_turned: Option<[Hash64; 4]>,
    /// dHash under each of [`perceptual64::GRID_TRANSFORMS`] (see `phash_turned`).
    pub dhash_turned: Option<[Hash64; 2]>,
    /// MD5 (128 bits) of the bytes as received, with [`Algorithm::Md5`].
    pub md5: Option<Md5Hash>,
    /// SHA-256 (256 bits) of the bytes as received, with [`Algorithm::Sha256`].
    pub sha256: Option<Hash256>,
    /// PDQ of the content boxes (only with [`HasherBuilder::regions`]).
    pub pdq_regions: Vec<RegionPdq>,
    /// PDQ of the banking windows, in [`regions::BANK_WINDOWS`] order, then of the trimmed and
    /// framed boxes when the picture has margins (only with [`HasherBuilder::windows`]).
    pub pdq_windows: Vec<PdqHash>,
    /// Corner points with patch descriptors of the banked picture (with
    /// [`HasherBuilder::windows`]; empty for a featureless picture).
    pub bank_keypoints: Vec<keypoints::Keypoint>,
    /// For a picture hashed for a bank (with [`HasherBuilder::windows`]) that is a template around
    /// a photo (a listing page, a chat screenshot, a flyer, a story frame;
    /// [`regions::template_photo`]): the photo's box, in pixels of the displayed picture at full
    /// size (as `width`). Its perceptual hashes (`pdq`, `phash`, `dhash`, `quality64`), crop
    /// windows and keypoints are then the photo's, not the whole picture's: the frame is shared
    /// with every other ad in the template and must not be matched on. The exact hashes stay the
    /// file's. `None` otherwise.
    pub photo_box: Option<regions::Rect>,
    /// Corner points of the upload (with [`HasherBuilder::regions`] and
    /// [`HasherBuilder::keypoints`]): of the whole picture (a list, so that the matcher takes
    /// several point sets of one upload); none for a featureless picture.
    pub query_keypoints: Vec<keypoints::UploadKeypoints>,
    /// The frames of an animation a viewer sees besides the default image (the hashes above),
    /// in animation order: each frame whose picture differs from the default image and from every
    /// frame kept before it (see [`FRAME_SKIP_DISTANCE`]). Empty for a still picture. At most
    /// [`decode::MAX_ANIMATION_FRAMES`] frames and [`decode::ANIMATION_PIXEL_BUDGET`] pixels are
    /// decoded; `warnings` says when frames were left out.
    pub frames: Vec<FrameHashes>,
    /// What is wrong with the file although it gave a picture, one sentence each: cut short or
    /// damaged (the hashes are of what could be decoded, the rest filled in by the decoder), or
    /// animation frames left unscreened. A screen reports these in its notes; a bank entry made
    /// from such a file is flagged.
    pub warnings: Vec<String>,
}

/// The hashes of one frame of an animation (see [`ImageHashes::frames`]): of the frame as
/// displayed (composited on white, in the file's orientation), the algorithms asked for but
/// without dihedral variants, content boxes or keypoints.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameHashes {
    /// The frame's place in the animation, from 0.
    pub index: u32,
    /// The frame's PDQ (with its quality), when PDQ was asked for.
    pub pdq: Option<PdqHash>,
    /// The frame's pHash, when asked for.
    pub phash: Option<Hash64>,
    /// The frame's dHash, when asked for.
    pub dhash: Option<Hash64>,
    /// Quality of the frame's grey picture, as [`ImageHashes::quality64`] (with its 64-bit hashes).
    pub quality64: Option<u8>,
}

/// A frame whose PDQ is within this many bits of the default image's or of a frame kept before
/// it "barely changes" and is skipped: a re-encode of one picture moves its PDQ 2 to 8 bits, so
/// within 8 the two are the same picture to PDQ, and a banked picture within a bank's distance
/// of the skipped frame is within that distance plus 8 of the one kept. (A blinking cursor or a
/// ticking counter moves PDQ 0 to 4 bits; a new scene, a hundred.)
pub const FRAME_SKIP_DISTANCE: u32 = 8;

/// The same for pHash and dHash when PDQ is not computed: 2 of 64 bits, the same share as 8 of 256.
pub const FRAME_SKIP_DISTANCE_64: u32 = 2;

impl FrameHashes {
    /// Whether this frame shows the same picture as `other` for every hash computed.
    fn barely_differs(&self, other: &FrameHashes) -> bool {
        match (self.pdq, other.pdq) {
            (Some(a), Some(b)) => a.hash.distance(&b.hash) <= FRAME_SKIP_DISTANCE,
            _ => {
                let near = |a: Option<Hash64>, b: Option<Hash64>| match (a, b) {
                    (Some(a), Some(b)) => a.distance(&b) <= FRAME_SKIP_DISTANCE_64,
                    _ => true,
                };
                near(self.phash, other.phash) && near(self.dhash, other.dhash)
            }
        }
    }
}

/// The hashes of one sub-rectangle of the displayed picture.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionPdq {
    /// In the pixels of PDQ's luma plane of the displayed picture (reduced when the JPEG was
    /// decoded at reduced scale).
    pub rect: regions::Rect,
    /// PDQ (256 bits) of the region (of the straightened picture when `tilt` is set).
    pub pdq: PdqHash,
    /// All eight rotations and mirrors of the region (with [`HasherBuilder::dihedral`]).
    pub dihedral: Option<[PdqHash; 8]>,
    /// pHash and dHash of the same box: their 16x16 and 9x8 grids forgive a box found a percent
    /// or two off, which moves PDQ by 30 bits.
    pub phash: Option<Hash64>,
    /// dHash of the same box, with [`Algorithm::Dhash`]; `None` for a trial turn.
    pub dhash: Option<Hash64>,
    /// Quality of the box's grey picture, as [`ImageHashes::quality64`] (with its 64-bit hashes).
    pub quality64: Option<u8>,
    /// Set for a picture turned back upright: a tilt measured from filled corners
    /// ([`regions::find_tilt`]; `rect` is the whole canvas, 64-bit hashes too), or one of the
    /// trial turns ([`regions::TRIAL_TURNS_DEGREES`]; `rect` is the box turned, PDQ only). The
    /// hashes are of the straightened picture.
    pub tilt: Option<regions::Tilt>,
    /// One of the trial turns: a guess, looked up against the banked crop windows only (turned
    /// back and cropped to fit, it is a centred crop of the banked picture, never all of it).
    pub trial_turn: bool,
}

/// How a transparent picture becomes opaque before hashing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlphaRule {
    /// Composite over white: the picture as displayed on a page.
    CompositeOnWhite,
    /// Keep the RGB under the alpha channel (Meta's tool chain).
    IgnoreAlpha,
}

impl ImageHasher {
    /// The limits every image is decoded under.
    pub fn limits(&self) -> &DecodeLimits {
        &self.limits
    }

    /// See [`HasherBuilder::decode_min_side`].
    pub fn decode_min_side(&self) -> Option<u32> {
        self.decode_min_side
    }

    /// Hash untrusted image bytes: [`ImageHasher::hash_bytes_for`] with every local lookup.
    pub fn hash_bytes(&self, bytes: &[u8]) -> Result<ImageHashes, DecodeError> {
        self.hash_bytes_for(bytes, LocalLookups::ALL)
    }

    /// Hash untrusted image bytes for a screen that can answer only `local`'s lookups: the
    /// upload's keypoints are found only when `local.keypoints` (and this hasher finds them), its
    /// trial turns only when `local.windows` (see [`LocalLookups`]). Errors: the bytes are not a
    /// picture vigie can decode within its limits.
    pub fn hash_bytes_for(
        &self,
        bytes: &[u8],
        local: LocalLookups,
    ) -> Result<ImageHashes, DecodeError> {
        let wants = |a| self.algorithms.contains(a);
        let needs_pixels = self.algorithms.iter().any(Algorithm::needs_pixels);
        let mut out = if needs_pixels {
            let decoded = decode::decode_for_hashing(bytes, &self.limits, self.decode_min_side)?;
            if self.windows
                && let Some(w) = decoded.warnings.first()
            {
                // A bank entry must be of the whole picture: its hashes would be of what the
                // decoder filled in, met by every upload cut the same way.
                return Err(DecodeError {
                    kind: DecodeErrorKind::Corrupt,
                    limit: None,
                    message: format!("not banked: {w}"),
                });
            }
            let mut out = self.hash_decoded_for(&decoded, local);
            out.warnings.extend(decoded.warnings.iter().cloned());
            if self.frames {
                self.hash_frames(bytes, decoded.orientation, &mut out);
            }
            out
        } else {
            // Exact hashes only: the header is still checked, so a non-image is refused alike.
            let header = decode::read_header(bytes, &self.limits)?;
            let (width, height) = header.display_dimensions();
            ImageHashes {
                format: header.format,
                width,
                height,
                orientation: header.orientation,
                has_alpha: false,
                pdq: None,
                pdq_dihedral: None,
                pdq_meta: None,
                phash: None,
                dhash: None,
                quality64: None,
                phash_turned: None,
                dhash_turned: None,
                md5: None,
                sha256: None,
                pdq_regions: Vec::new(),
                pdq_windows: Vec::new(),
                bank_keypoints: Vec::new(),
                photo_box: None,
                query_keypoints: Vec::new(),
                frames: Vec::new(),
                warnings: Vec::new(),
            }
        };
        match (wants(Algorithm::Md5), wants(Algorithm::Sha256)) {
            (true, true) => {
                let (md5, sha256) = exact::md5_and_sha256(bytes);
                out.md5 = Some(md5);
                out.sha256 = Some(sha256);
            }
            (true, false) => out.md5 = Some(exact::md5(bytes)),
            (false, true) => out.sha256 = Some(exact::sha256(bytes)),
            (false, false) => {}
        }
        Ok(out)
    }

    /// Hash the frames of an animation into `out.frames` (skipping those that barely differ from
    /// the default image, whose hashes `out` holds, or from a frame kept before), and add the
    /// walk's warnings to `out.warnings`.
    fn hash_frames(&self, bytes: &[u8], orientation: Dihedral, out: &mut ImageHashes) {
        let default_image = FrameHashes {
            index: 0,
            pdq: out.pdq,
            phash: out.phash,
            dhash: out.dhash,
            quality64: out.quality64,
        };
        let mut kept: Vec<FrameHashes> = Vec::new();
        let mut previous: Option<image::RgbaImage> = None;
        let read = decode::for_each_frame(bytes, &self.limits, |frame| {
            // A frame whose pixels are those of the one before (a pause, a loop's hold) costs a
            // comparison, not a hashing.
            if frame.is_default_image || previous.as_ref() == Some(&frame.picture) {
                previous = Some(frame.picture);
                return;
            }
            let h = self.hash_frame(frame.index, &frame.picture, orientation);
            previous = Some(frame.picture);
            if !h.barely_differs(&default_image) && !kept.iter().any(|k| h.barely_differs(k)) {
                kept.push(h);
            }
        });
        out.frames = kept;
        out.warnings.extend(read.warnings);
    }

    /// PDQ, pHash and dHash (those asked for) of one frame as displayed: composited on white once
    /// (a frame is nearly always opaque, and its alpha is then dropped without arithmetic), then
    /// hashed as an opaque picture, whose conversions take the fast paths.
    fn hash_frame(
        &self,
        index: u32,
        frame: &image::RgbaImage,
        orientation: Dihedral,
    ) -> FrameHashes {
        let wants = |a| self.algorithms.contains(a);
        let raw = frame.as_raw();
        let mut rgb = Vec::with_capacity(raw.len() / 4 * 3);
        let mut opaque = true;
        for p in raw.chunks_exact(4) {
            rgb.extend_from_slice(&p[..3]);
            opaque &= p[3] == 255;
        }
        let picture = match image::RgbImage::from_raw(frame.width(), frame.height(), rgb) {
            Some(rgb) if opaque => DynamicImage::ImageRgb8(rgb),
            _ => on_white(&DynamicImage::ImageRgba8(frame.clone())).into_owned(),
        };
        let pdq = wants(Algorithm::Pdq).then(|| {
            pdq::pdq_hash(
                &luma_plane(&picture, AlphaRule::CompositeOnWhite).transformed(orientation),
            )
        });
        let (phash, dhash, quality64) = if wants(Algorithm::Phash) || wants(Algorithm::Dhash) {
            let gray = perceptual64::hash_input(&picture, orientation);
            (
                wants(Algorithm::Phash).then(|| self.perceptual64.phash_gray(&gray)),
                wants(Algorithm::Dhash).then(|| self.perceptual64.dhash_gray(&gray)),
                Some(perceptual64::quality(&gray)),
            )
        } else {
            (None, None, None)
        };
        FrameHashes {
            index,
            pdq,
            phash,
            dhash,
            quality64,
        }
    }

    /// The perceptual hashes of a decoded image (the exact hashes are left empty), with every
    /// local lookup ([`ImageHasher::hash_decoded_for`]).
    pub fn hash_decoded(&self, decoded: &decode::DecodedImage) -> ImageHashes {
        self.hash_decoded_for(decoded, LocalLookups::ALL)
    }

    /// [`ImageHasher::hash_decoded`], leaving out what a screen that can answer only `local`'s
    /// lookups would not use (see [`LocalLookups`]).
    fn hash_decoded_for(&self, decoded: &decode::DecodedImage, local: LocalLookups) -> ImageHashes {
        let wants = |a| self.algorithms.contains(a);
        let keypoints = self.keypoints && local.keypoints;
        let (width, height) = decoded.display_dimensions();
        let has_alpha = decoded.has_alpha();
        let orientation = decoded.orientation;
        let mut out = ImageHashes {
            format: decoded.format,
            width,
            height,
            orientation,
            has_alpha,
            pdq: None,
            pdq_dihedral: None,
            pdq_meta: None,
            phash: None,
            dhash: None,
            quality64: None,
            phash_turned: None,
            dhash_turned: None,
            md5: None,
            sha256: None,
            pdq_regions: Vec::new(),
            pdq_windows: Vec::new(),
            bank_keypoints: Vec::new(),
            photo_box: None,
            query_keypoints: Vec::new(),
            frames: Vec::new(),
            warnings: Vec::new(),
        };
        // The size of the plane the content boxes were found in (PDQ's luma plane).
        let mut region_plane = (0usize, 0usize);
        // The size of the displayed picture's luma plane when a bank entry keeps only its photo.
        let mut bank_plane = (0usize, 0usize);
        // That photo's box in the pixels of that plane.
        let mut photo: Option<regions::Rect> = None;
        if wants(Algorithm::Pdq) {
            let (file_w, file_h) = decoded.file_dimensions;
            let (file_w, file_h) = (file_w as usize, file_h as usize);
            let stored_luma =
                luma_plane(&decoded.stored, AlphaRule::IgnoreAlpha).with_source(file_w, file_h);
            let displayed_luma = if has_alpha || orientation != Dihedral::Original {
                // Meta's rule sees other pixels than a viewer does: hash both.
                out.pdq_meta = Some(pdq::pdq_hash(&stored_luma));
                if has_alpha {
                    luma_plane(&decoded.stored, AlphaRule::CompositeOnWhite)
                        .with_source(file_w, file_h)
                        .transformed(orientation)
                } else {
                    stored_luma.transformed(orientation)
                }
            } else {
                stored_luma
            };
            // A bank entry of a templated picture is its photo (see `ImageHashes::photo_box`).
            photo = self
                .windows
                .then(|| regions::template_photo(&displayed_luma))
                .flatten();
            let displayed_luma = match photo {
                Some(r) => {
                    bank_plane = (displayed_luma.width, displayed_luma.height);
                    out.photo_box = Some(r.scaled(bank_plane, (width as usize, height as usize)));
                    regions::crop_plane(&displayed_luma, r)
                }
                None => displayed_luma,
            };
            let coeffs = pdq::pdq_coefficients(&displayed_luma);
            out.pdq = Some(coeffs.hash());
            if self.dihedral {
                out.pdq_dihedral = Some(coeffs.all_dihedral_hashes());
            }
            if self.regions {
                let boxes = regions::query_regions(&displayed_luma);
                if keypoints {
                    // Only of the whole upload: also of its largest content box (a photo above a
                    // caption, inside a screenshot) gained 0.3 points on `vigie eval` once the
                    // vote tried zooms, for about 0.3 ms a screen.
                    out.query_keypoints = keypoints::query_keypoint_sets(&displayed_luma);
                }
                region_plane = (displayed_luma.width, displayed_luma.height);
                for rect in boxes {
                    let c = pdq::pdq_coefficients(&regions::crop_plane(&displayed_luma, rect));
                    out.pdq_regions.push(RegionPdq {
                        rect,
                        pdq: c.hash(),
                        dihedral: self.dihedral.then(|| c.all_dihedral_hashes()),
                        phash: None,
                        dhash: None,
                        quality64: None,
                        tilt: None,
                        trial_turn: false,
                    });
                }
                // A picture turned a few degrees on a filled canvas: turned back upright, with
                // its 64-bit hashes from the same straightened pixels (a crop of the grey picture
                // would still be tilted).
                if let Some(tilt) = regions::find_tilt(&displayed_luma) {
                    let straight = regions::straighten(&displayed_luma, &tilt);
                    let c = pdq::pdq_coefficients(&straight);
                    let gray = plane_to_gray(&straight);
                    out.pdq_regions.push(RegionPdq {
                        rect: regions::Rect::full(&displayed_luma),
                        pdq: c.hash(),
                        dihedral: self.dihedral.then(|| c.all_dihedral_hashes()),
                        phash: wants(Algorithm::Phash).then(|| self.perceptual64.phash_gray(&gray)),
                        dhash: wants(Algorithm::Dhash).then(|| self.perceptual64.dhash_gray(&gray)),
                        quality64: (wants(Algorithm::Phash) || wants(Algorithm::Dhash))
                            .then(|| perceptual64::quality(&gray)),
                        tilt: Some(tilt),
                        trial_turn: false,
                    });
                } else if local.windows {
                    // No corners to measure: try the usual turns of an editor's straighten tool
                    // on the largest content box (a caption under it is upright). With keypoints
                    // on, only the wide ones: their vote tries the turns up to 5 degrees (with
                    // them, `vigie eval` lost no copy without those trial turns and saved 0.2 ms
                    // a screen), and an 8-degree turn changes their patches too much.
                    let main = out
                        .pdq_regions
                        .iter()
                        .map(|r| r.rect)
                        .max_by_key(|r| r.width * r.height)
                        .unwrap_or_else(|| regions::Rect::full(&displayed_luma));
                    // Small: PDQ reads a 64x64 summary, and four turns of a full plane would
                    // cost more than the rest of the screen.
                    let plane = regions::shrink(&displayed_luma, main, regions::TURN_SIDE);
                    let turns: Vec<regions::Tilt> = if keypoints {
                        // Cut to the deepest banked window: a fitting box would show less of
                        // the picture than any window keeps (see `window_inside_turn`).
                        let [margin, ..] = regions::BANK_WINDOWS[regions::BANK_WINDOWS.len() - 1];
                        regions::WIDE_TRIAL_TURNS_DEGREES
                            .iter()
                            .filter_map(|d| {
                                regions::window_inside_turn(
                                    &plane,
                                    d.to_radians(),
                                    1.0 - 2.0 * margin,
                                )
                            })
                            .collect()
                    } else {
                        regions::TRIAL_TURNS_DEGREES
                            .iter()
                            .map(|d| regions::fit_inside_turn(&plane, d.to_radians()))
                            .collect()
                    };
                    for tilt in turns {
                        let straight = regions::straighten(&plane, &tilt);
                        let c = pdq::pdq_coefficients(&straight);
                        out.pdq_regions.push(RegionPdq {
                            rect: main,
                            pdq: c.hash(),
                            dihedral: None,
                            phash: None,
                            dhash: None,
                            quality64: None,
                            tilt: Some(tilt),
                            trial_turn: true,
                        });
                    }
                }
            }
            if self.windows {
                out.bank_keypoints = keypoints::bank_keypoints(&displayed_luma);
                for w in regions::BANK_WINDOWS {
                    let rect = regions::window_rect(&displayed_luma, w);
                    out.pdq_windows
                        .push(pdq::pdq_hash(&regions::crop_plane(&displayed_luma, rect)));
                }
                // A picture with uniform margins (a product shot on white): a screenshot or a
                // caption page of that colour swallows them, so the upload's content box is its
                // trimmed box, or its framed box (the same search the upload gets, which cuts at
                // drawn lines rather than at the first pixel off the margin colour).
                let full = regions::Rect::full(&displayed_luma);
                let trimmed = regions::trim_uniform_borders(&displayed_luma);
                let framed = regions::framed_box(&displayed_luma);
                let mut kept: Vec<regions::Rect> = Vec::new();
                for r in [trimmed, framed] {
                    if regions::differs_by_area(&r, &full)
                        && kept.iter().all(|k| regions::differs_by_area(&r, k))
                    {
                        kept.push(r);
                        out.pdq_windows
                            .push(pdq::pdq_hash(&regions::crop_plane(&displayed_luma, r)));
                    }
                }
            }
        }
        if wants(Algorithm::Phash) || wants(Algorithm::Dhash) {
            let mut gray = perceptual64::hash_input(&decoded.stored, orientation);
            if let Some(r) = photo {
                // The photo's grey picture, cut as an upload's content box is.
                gray = crop_scaled(&gray, r, bank_plane);
            }
            // (The grey picture is reduced only down to a shorter side of 128: a side under 5
            // pixels is the picture's own, and gives quality 0 as PDQ gives no hash.)
            out.quality64 = Some(perceptual64::quality(&gray));
            for region in out.pdq_regions.iter_mut().filter(|r| r.tilt.is_none()) {
                let sub = crop_scaled(&gray, region.rect, region_plane);
                region.quality64 = Some(perceptual64::quality(&sub));
                if wants(Algorithm::Phash) {
                    region.phash = Some(self.perceptual64.phash_gray(&sub));
                }
                if wants(Algorithm::Dhash) {
                    region.dhash = Some(self.perceptual64.dhash_gray(&sub));
                }
            }
            // Only the transforms that come free from the resized grid (see GRID_TRANSFORMS).
            if wants(Algorithm::Phash) {
                if self.dihedral {
                    let (upright, turned) = self.perceptual64.phash_gray_turned(&gray);
                    out.phash = Some(upright);
                    out.phash_turned = Some(turned);
                } else {
                    out.phash = Some(self.perceptual64.phash_gray(&gray));
                }
            }
            if wants(Algorithm::Dhash) {
                if self.dihedral {
                    let (upright, turned) = self.perceptual64.dhash_gray_turned(&gray);
                    out.dhash = Some(upright);
                    out.dhash_turned = Some(turned);
                } else {
                    out.dhash = Some(self.perceptual64.dhash_gray(&gray));
                }
            }
        }
        out
    }
}

/// A luma plane as a grey picture, box-averaged as the 64-bit hashes' input is (see
/// [`perceptual64::REDUCED_SIDE`]).
fn plane_to_gray(plane: &pdq::LumaPlane) -> GrayImage {
    let data = plane
        .data
        .iter()
        .map(|v| v.clamp(0.0, 255.0).round() as u8)
        .collect();
    let gray = GrayImage::from_raw(plane.width as u32, plane.height as u32, data)
        .unwrap_or_else(|| GrayImage::new(plane.width as u32, plane.height as u32));
    let k = gray.width().min(gray.height()) / perceptual64::REDUCED_SIDE;
    if k >= 2 {
        perceptual64::reduce(&gray, k)
    } else {
        gray
    }
}

/// The part of `gray` that `rect` covers in a plane of `plane` pixels showing the same picture
/// (the 64-bit hashes read a smaller picture than PDQ), box-averaged as
/// [`perceptual64::REGION_REDUCED_SIDE`] says.
fn crop_scaled(gray: &GrayImage, rect: regions::Rect, plane: (usize, usize)) -> GrayImage {
    let (gw, gh) = gray.dimensions();
    let scale = |v: usize, from: usize, to: u32| {
        ((v as f64 * f64::from(to) / from.max(1) as f64).round() as u32).min(to)
    };
    let x0 = scale(rect.x, plane.0, gw).min(gw.saturating_sub(1));
    let y0 = scale(rect.y, plane.1, gh).min(gh.saturating_sub(1));
    let x1 = scale(rect.x + rect.width, plane.0, gw).max(x0 + 1).min(gw);
    let y1 = scale(rect.y + rect.height, plane.1, gh).max(y0 + 1).min(gh);
    let sub = image::imageops::crop_imm(gray, x0, y0, x1.saturating_sub(x0), y1.saturating_sub(y0))
        .to_image();
    let k = sub.width().min(sub.height()) / perceptual64::REGION_REDUCED_SIDE;
    if k >= 2 {
        perceptual64::reduce(&sub, k)
    } else {
        sub
    }
}

/// The picture as displayed: composited on white and in its EXIF orientation.
pub fn displayed_picture(decoded: &decode::DecodedImage) -> DynamicImage {
    let mut picture = on_white(&decoded.stored).into_owned();
    apply_dihedral(&mut picture, decoded.orientation);
    picture
}

/// A picture with transparency composited on white (borrowed unchanged when it is opaque).
pub(crate) fn on_white(stored: &DynamicImage) -> std::borrow::Cow<'_, DynamicImage> {
    if !stored.color().has_alpha() {
        return std::borrow::Cow::Borrowed(stored);
    }
    let rgba = stored.to_rgba8();
    let mut rgb = image::RgbImage::new(rgba.width(), rgba.height());
    for (dst, src) in rgb.pixels_mut().zip(rgba.pixels()) {
        let a = f32::from(src[3]) / 255.0;
        for c in 0..3 {
            dst[c] = (f32::from(src[c]) * a + 255.0 * (1.0 - a)).round() as u8;
        }
    }
    std::borrow::Cow::Owned(DynamicImage::ImageRgb8(rgb))
}

pub(crate) fn apply_dihedral(picture: &mut DynamicImage, t: Dihedral) {
    *picture = match t {
        Dihedral::Original => return,
        Dihedral::Rotate90 => picture.rotate90(),
        Dihedral::Rotate180 => picture.rotate180(),
        Dihedral::Rotate270 => picture.rotate270(),
        Dihedral::FlipHorizontal => picture.fliph(),
        Dihedral::FlipVertical => picture.flipv(),
        Dihedral::Transpose => picture.rotate90().fliph(),
        Dihedral::Transverse => picture.rotate270().fliph(),
    };
}

/// Luminance of a picture, `0.299 R + 0.587 G + 0.114 B` on the 0..=255 scale, in stored orientation.
pub fn luma_plane(picture: &DynamicImage, alpha: AlphaRule) -> LumaPlane {
    let (w, h) = picture.dimensions();
    let (w, h) = (w as usize, h as usize);
    let mut data = Vec::with_capacity(w * h);
    let luma = |r: u8, g: u8, b: u8| {
        pdq::LUMA_R * f32::from(r) + pdq::LUMA_G * f32::from(g) + pdq::LUMA_B * f32::from(b)
    };
    match picture {
        DynamicImage::ImageLuma8(img) => data.extend(img.as_raw().iter().map(|&v| f32::from(v))),
        DynamicImage::ImageRgb8(img) => {
            data.extend(img.as_raw().chunks_exact(3).map(|p| luma(p[0], p[1], p[2])))
        }
        other => {
            let rgba = match other {
                DynamicImage::ImageRgba8(img) => std::borrow::Cow::Borrowed(img),
                _ => std::borrow::Cow::Owned(other.to_rgba8()),
            };
            match alpha {
                AlphaRule::IgnoreAlpha => {
                    data.extend(
                        rgba.as_raw()
                            .chunks_exact(4)
                            .map(|p| luma(p[0], p[1], p[2])),
                    );
                }
                AlphaRule::CompositeOnWhite => {
                    data.extend(rgba.as_raw().chunks_exact(4).map(|p| {
                        let a = f32::from(p[3]) / 255.0;
                        luma(p[0], p[1], p[2]) * a + 255.0 * (1.0 - a)
                    }))
                }
            }
        }
    }
    LumaPlane::new(w, h, data)
}

/// A stable name for an image format, as reported in JSON.
pub fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Jpeg => "jpeg",
        ImageFormat::Png => "png",
        ImageFormat::WebP => "webp",
        ImageFormat::Gif => "gif",
        ImageFormat::Bmp => "bmp",
        ImageFormat::Tiff => "tiff",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bridge() -> image::RgbImage {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bridge.jpg");
        image::open(path).expect("fixture").to_rgb8()
    }

    /// `picture` on a white page `extra` pixels wider and taller, placed at `at`.
    fn on_white_page(
        picture: &image::RgbImage,
        extra: (u32, u32),
        at: (i64, i64),
    ) -> image::RgbImage {
        let (w, h) = picture.dimensions();
        let mut page =
            image::RgbImage::from_pixel(w + extra.0, h + extra.1, image::Rgb([255, 255, 255]));
        image::imageops::overlay(&mut page, picture, at.0, at.1);
        page
    }

    /// The hashes of `picture` sent as a PNG.
    fn hash_png(hasher: &ImageHasher, picture: &image::RgbImage) -> ImageHashes {
        let mut png = Vec::new();
        DynamicImage::ImageRgb8(picture.clone())
            .write_to(&mut std::io::Cursor::new(&mut png), ImageFormat::Png)
            .expect("encode");
        hasher.hash_bytes(&png).expect("hash")
    }

    #[test]
    fn content_boxes_carry_64_bit_hashes_of_the_framed_picture() {
        let bridge = bridge();
        let hasher = HasherBuilder::new().regions(true).build();
        let plain = hash_png(&hasher, &bridge);
        let framed = hash_png(&hasher, &on_white_page(&bridge, (120, 200), (60, 100)));
        let (Some(phash), Some(dhash)) = (plain.phash, plain.dhash) else {
            panic!("64-bit hashes");
        };
        // The frame moves the whole picture's hashes away; its content box's hashes stay close.
        let whole = (
            framed.phash.expect("phash").distance(&phash),
            framed.dhash.expect("dhash").distance(&dhash),
        );
        assert!(whole.0 > 8 || whole.1 > 8, "{whole:?}");
        let best = framed
            .pdq_regions
            .iter()
            .filter(|r| !r.trial_turn)
            .map(|r| {
                (
                    r.phash.expect("region phash").distance(&phash),
                    r.dhash.expect("region dhash").distance(&dhash),
                )
            })
            .min()
            .expect("a content box");
        assert!(best.0 <= 6 && best.1 <= 6, "{best:?}");
    }

    #[test]
    fn a_banked_picture_with_margins_also_keeps_its_trimmed_box() {
        let bridge = bridge();
        let hasher = HasherBuilder::new().windows(true).build();
        let plain = hash_png(&hasher, &bridge);
        let framed = hash_png(&hasher, &on_white_page(&bridge, (120, 200), (60, 100)));
        assert_eq!(plain.pdq_windows.len(), regions::BANK_WINDOWS.len());
        assert_eq!(framed.pdq_windows.len(), regions::BANK_WINDOWS.len() + 1);
        let trimmed = framed.pdq_windows.last().expect("trimmed box").hash;
        let photo = plain.pdq.expect("pdq").hash;
        assert!(
            trimmed.distance(&photo) <= 8,
            "{}",
            trimmed.distance(&photo)
        );
    }

    #[test]
    fn a_banked_picture_with_a_mark_in_its_margin_keeps_its_framed_box_too() {
        // A small mark (a logo, 2% of the width) in the top margin: the trimmed box stops at it,
        // the framed box (drawn lines may carry 3% of something else) goes on to the photo.
        let bridge = bridge();
        let mut page = on_white_page(&bridge, (120, 300), (60, 200));
        for y in 40..60 {
            for x in 100..120 {
                page.put_pixel(x, y, image::Rgb([90, 90, 90]));
            }
        }
        let hasher = HasherBuilder::new().windows(true).build();
        let photo = hash_png(&hasher, &bridge).pdq.expect("pdq").hash;
        let windows = hash_png(&hasher, &page).pdq_windows;
        assert_eq!(windows.len(), regions::BANK_WINDOWS.len() + 2);
        let distances: Vec<u32> = windows.iter().map(|p| p.hash.distance(&photo)).collect();
        let (trimmed, framed) = (distances[windows.len() - 2], distances[windows.len() - 1]);
        assert!(framed <= 8 && trimmed > 31, "{distances:?}");
    }

    #[test]
    fn algorithm_lists_parse() {
        let set = AlgorithmSet::parse("pdq, MD5").unwrap();
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            vec![Algorithm::Pdq, Algorithm::Md5]
        );
        assert!(
            AlgorithmSet::parse("pdq,sha1")
                .unwrap_err()
                .contains("sha1")
        );
        assert!(AlgorithmSet::parse("").is_err());
    }

    #[test]
    fn dihedral_application_matches_image_crate_orientation() {
        use image::metadata::Orientation;
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(5, 3, |x, y| {
            image::Rgb([x as u8 * 40, y as u8 * 70, 9])
        }));
        let cases = [
            (Orientation::FlipHorizontal, Dihedral::FlipHorizontal),
            (Orientation::Rotate180, Dihedral::Rotate180),
            (Orientation::FlipVertical, Dihedral::FlipVertical),
            (Orientation::Rotate90FlipH, Dihedral::Transpose),
            (Orientation::Rotate90, Dihedral::Rotate90),
            (Orientation::Rotate270FlipH, Dihedral::Transverse),
            (Orientation::Rotate270, Dihedral::Rotate270),
        ];
        for (o, t) in cases {
            let mut by_image = img.clone();
            by_image.apply_orientation(o);
            let mut by_us = img.clone();
            apply_dihedral(&mut by_us, t);
            assert_eq!(by_image, by_us, "{o:?}");
            // The luma plane transform agrees with the pixel transform.
            let plane = luma_plane(&img, AlphaRule::IgnoreAlpha).transformed(t);
            assert_eq!(
                plane,
                luma_plane(&by_image, AlphaRule::IgnoreAlpha),
                "{o:?}"
            );
        }
    }
}
