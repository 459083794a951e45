//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use vigie::hashing::{HasherBuilder, ImageHasher, ImageHashes};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn read_fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// `../shared` beside the repository, when it is there.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
    dir.join("reference/pdq-reference.tsv")
        .exists()
        .then_some(dir)
}

/// One row of a `pdq-reference.tsv`: file, Meta's PDQ hex, quality, md5, sha256.
pub struct ReferenceRow {
    pub file: String,
    pub pdq: String,
    pub quality: u8,
    pub md5: String,
    pub sha256: String,
}

pub fn read_reference(path: &Path) -> Vec<ReferenceRow> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 5, "bad reference row: {l}");
            ReferenceRow {
                file: f[0].to_string(),
                pdq: f[1].to_string(),
                quality: f[2].parse().expect("quality"),
                md5: f[3].to_string(),
                sha256: f[4].to_string(),
            }
        })
        .collect()
}

pub fn hasher_with_dihedral() -> ImageHasher {
    HasherBuilder::new().dihedral(true).build()
}

pub fn hash_file(hasher: &ImageHasher, path: &Path) -> ImageHashes {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    hasher
        .hash_bytes(&bytes)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A screen of hashes (the MD5 of the empty file) with a bearer key: it succeeds wherever the
/// transport and the key let it through.
pub fn authorized_screen(key: &str) -> tonic::Request<vigie::service::proto::ScreenRequest> {
    use vigie::service::proto::{HashSet, ScreenRequest, screen_request};
    let mut request = tonic::Request::new(ScreenRequest {
        input: Some(screen_request::Input::Hashes(HashSet {
            md5: "d41d8cd98f00b204e9800998ecf8427e".into(),
            ..Default::default()
        })),
        ..Default::default()
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {key}").parse().expect("header"),
    );
    request
}
