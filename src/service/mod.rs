//! The gRPC service: a thin tonic layer over the core (hashing, matcher, store). Protobuf types
//! stay in this module; errors map to `tonic::Status` in one place (`error.rs`).

pub mod auth;
pub mod banks;
pub mod convert;
pub mod error;
pub mod metrics;
pub mod screening;
pub mod server;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::sync::Semaphore;
use tonic::Status;

use crate::hashing::ImageHasher;
use crate::matcher::HashIndexes;
use crate::store::Store;
use error::ServiceError;
use metrics::Metrics;

pub mod proto {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("vigie.v1");
    /// Encoded descriptors of every vigie.v1 file, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/vigie_descriptor.bin"));
}

/// Request limits: defined with the settings that give them, in [`crate::config`].
pub use crate::config::ServiceLimits;

/// What every handler shares.
pub struct ServiceState {
    pub store: Arc<Store>,
    pub indexes: Arc<HashIndexes>,
    /// All algorithms, with the dihedral PDQ hashes (rotated and mirrored re-uploads).
    pub hasher: Arc<ImageHasher>,
    /// For images added to a bank: all algorithms and the crop windows an entry keeps, with the
    /// screening hasher's limits and decoding scale.
    pub bank_hasher: Arc<ImageHasher>,
    pub limits: ServiceLimits,
    pub hash_permits: Arc<Semaphore>,
    pub metrics: Arc<Metrics>,
    pub started: Instant,
    ready: AtomicBool,
}

impl ServiceState {
    pub fn new(
        store: Arc<Store>,
        indexes: Arc<HashIndexes>,
        hasher: ImageHasher,
        limits: ServiceLimits,
        metrics: Arc<Metrics>,
    ) -> Self {
        let bank_hasher = crate::hashing::HasherBuilder::new()
            .windows(true)
            .limits(*hasher.limits())
            .decode_min_side(hasher.decode_min_side())
            .build();
        ServiceState {
            store,
            indexes,
            hasher: Arc::new(hasher),
            bank_hasher: Arc::new(bank_hasher),
            hash_permits: Arc::new(Semaphore::new(limits.hash_workers.max(1))),
            limits,
            metrics,
            started: Instant::now(),
            ready: AtomicBool::new(false),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Records the call's outcome and latency, and turns a service error into its status.
    pub fn finish<T>(
        &self,
        method: &'static str,
        started: Instant,
        result: Result<T, ServiceError>,
    ) -> Result<T, Status> {
        let code = match &result {
            Ok(_) => tonic::Code::Ok,
            Err(e) => e.code(),
        };
        self.metrics.record_request(method, code, started.elapsed());
        result.map_err(Status::from)
    }
}
