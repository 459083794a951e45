//! The gRPC service: a thin tonic layer over the core (hashing, matcher, store). Protobuf types
//! stay in this module; errors map to `tonic::Status` in one place (`error.rs`).

pub mod auth;
pub mod banks;
pub mod codec;
pub mod connections;
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

use crate::cluster::BankWriter;
use crate::hashing::HashingSetup;
use crate::matcher::{Guard, LiveBanks};
use crate::store::Store;
use error::ServiceError;
use metrics::Metrics;

pub mod proto {
    //! The generated protobuf types and services of `proto/vigie/v1/` (their docs are the
    //! `.proto` files' comments).
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("vigie.v1");
    /// Encoded descriptors of every vigie.v1 file, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/vigie_descriptor.bin"));
}

/// Request limits: defined with the settings that give them, in [`crate::config`].
pub use crate::config::ServiceLimits;

impl ServiceLimits {
    /// How the service hashes uploads and banked pictures: its keypoint switch and decoding scale,
    /// and uploads limited to `max_image_bytes`.
    pub fn hashing_setup(&self) -> HashingSetup {
        HashingSetup {
            keypoints: self.keypoints,
            decode_min_side: self.decode_min_side,
            limits: crate::hashing::DecodeLimits {
                max_encoded_bytes: self.max_image_bytes,
                ..Default::default()
            },
        }
    }
}

/// How many hashing workers streams may hold together, of `workers`: all but one (at least one).
pub fn stream_worker_share(workers: usize) -> usize {
    workers.saturating_sub(1).max(1)
}

/// A byte budget as semaphore permits of 1 KiB each (at least one).
pub fn kib_permits(bytes: usize) -> usize {
    bytes.div_ceil(1024).clamp(1, u32::MAX as usize)
}

/// What every handler shares.
pub struct ServiceState {
    /// The banks and their live index: every screen goes through it.
    pub banks: Arc<LiveBanks>,
    /// Where bank changes go: `banks` itself on one node, the cluster's stream on a replica
    /// (`crate::cluster`).
    pub writer: Arc<dyn BankWriter>,
    /// Request limits.
    pub limits: ServiceLimits,
    /// Hashing workers: CPU-bound work waits for one of these.
    pub hash_permits: Arc<Semaphore>,
    /// The workers `ScreenStream` items may hold together: all but one, so that a unary call
    /// never waits behind a stream's backlog (see `screening::run_bounded`).
    pub stream_permits: Arc<Semaphore>,
    /// [`ServiceLimits::streams_bytes`] in KiB permits.
    pub stream_bytes: Arc<Semaphore>,
    /// Request, match and decode-error counters.
    pub metrics: Arc<Metrics>,
    /// Per-key rate limits, probing detection and answer detail (`matcher::guard`), shared by
    /// every edge.
    pub guard: Arc<Guard>,
    /// When the service started (uptime in stats).
    pub started: Instant,
    ready: AtomicBool,
    draining: AtomicBool,
    serving: AtomicBool,
}

impl ServiceState {
    /// The shared state over `banks`, not ready until [`ServiceState::set_ready`].
    pub fn new(banks: Arc<LiveBanks>, limits: ServiceLimits, metrics: Arc<Metrics>) -> Self {
        ServiceState {
            writer: banks.clone(),
            banks,
            hash_permits: Arc::new(Semaphore::new(limits.hash_workers.max(1))),
            stream_permits: Arc::new(Semaphore::new(stream_worker_share(limits.hash_workers))),
            stream_bytes: Arc::new(Semaphore::new(kib_permits(limits.streams_bytes))),
            guard: Arc::new(Guard::new(limits.guard.clone())),
            limits,
            metrics,
            started: Instant::now(),
            ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            serving: AtomicBool::new(true),
        }
    }

    /// The store, for reads; writes go through `writer`.
    pub fn store(&self) -> &Store {
        self.banks.store()
    }

    /// Whether the index is loaded and screens are served.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Marks the index loaded: screens are served from now on.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Whether a drain has begun (health then stays NOT_SERVING whatever else happens).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Marks the drain begun.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Whether this process should take traffic, what health checks and the HTTP `/status`
    /// report: the index is loaded and, on a cluster replica, the replica has caught up with its
    /// stream (`crate::cluster`). Screens are answered while [`ServiceState::is_ready`], even when
    /// a replica is behind.
    pub fn is_serving(&self) -> bool {
        self.is_ready() && self.serving.load(Ordering::Acquire)
    }

    /// Sets whether this process should take traffic once its index is loaded (true unless a
    /// cluster replica is behind its stream).
    pub fn set_serving(&self, serving: bool) {
        self.serving.store(serving, Ordering::Release);
    }

    /// What `caller` may see and do (its key's policy over the server's defaults).
    pub fn access(&self, caller: &auth::Caller) -> crate::matcher::Access {
        caller.access(self.guard.config())
    }

    /// Takes one screen of `access`'s rate. Errors: [`ServiceError::Refused`] (rate limited,
    /// with the time to wait).
    pub fn admit(&self, access: &crate::matcher::Access) -> Result<(), ServiceError> {
        self.guard
            .admit(access, Instant::now())
            .map_err(ServiceError::Refused)
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
