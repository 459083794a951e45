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
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tonic::Status;

use crate::cluster::BankWriter;
use crate::hashing::HashingSetup;
use crate::matcher::LiveBanks;
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

/// Request limits.
#[derive(Clone, Debug)]
pub struct ServiceLimits {
    /// Largest gRPC message accepted (beyond: RESOURCE_EXHAUSTED).
    pub max_request_bytes: usize,
    /// Largest image accepted inside a message.
    pub max_image_bytes: usize,
    /// Images decoded and hashed at once.
    pub hash_workers: usize,
    /// How long a request waits for a hashing worker before RESOURCE_EXHAUSTED.
    pub queue_wait: Duration,
    /// JPEG decoding scale for hashing (see `HasherBuilder::decode_min_side`); `None` = full size.
    pub decode_min_side: Option<u32>,
    /// Screens also match uploads by keypoints (`hashing::keypoints`). On by default: on
    /// `vigie eval` it takes recall from 85% to 97%, at zero false matches, and it is what finds
    /// crops of a quarter and rotated copies under a caption. Off saves about 0.6 ms a screen.
    pub keypoints: bool,
}

impl Default for ServiceLimits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        ServiceLimits {
            max_request_bytes: 32 << 20,
            max_image_bytes: 32 << 20,
            // One more than the cores: the CPU also receives requests and sends answers, and with
            // one worker per core it idled about 15% of the time. `vigie bench service` on this
            // 2-core machine (1-2 MP JPEGs, 1M-entry bank): one per core 241 screens/s, three 282,
            // four 283 but with a worse p99 under overload (time-slicing).
            hash_workers: cores + 1,
            // Short: past it a caller is better told at once that the server is saturated, and
            // the admitted requests keep their latency: at twice the sustainable load, admitted
            // p99 35 ms with 10 ms here, 57 ms with 25 ms.
            queue_wait: Duration::from_millis(10),
            decode_min_side: Some(crate::hashing::DEFAULT_DECODE_MIN_SIDE),
            keypoints: true,
        }
    }
}

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
    /// Request, match and decode-error counters.
    pub metrics: Arc<Metrics>,
    /// When the service started (uptime in stats).
    pub started: Instant,
    ready: AtomicBool,
}

impl ServiceState {
    /// The shared state over `banks`, not ready until [`ServiceState::set_ready`].
    pub fn new(banks: Arc<LiveBanks>, limits: ServiceLimits, metrics: Arc<Metrics>) -> Self {
        ServiceState {
            writer: banks.clone(),
            banks,
            hash_permits: Arc::new(Semaphore::new(limits.hash_workers.max(1))),
            limits,
            metrics,
            started: Instant::now(),
            ready: AtomicBool::new(false),
        }
    }

    /// The store, for reads; writes go through `writer`.
    pub fn store(&self) -> &Store {
        self.banks.store()
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
