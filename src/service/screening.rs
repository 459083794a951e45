//! `vigie.v1.Screening`: Screen, ScreenStream, Hash.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::ServiceState;
use super::convert::{computed_hashes, parse_hash_set, to_proto_match};
use super::error::ServiceError;
use super::proto::screening_server::Screening;
use super::proto::{
    HashRequest, HashResponse, ItemError, ScreenRequest, ScreenResponse, TransformedHash,
    screen_request,
};
use crate::hashing::{AlgorithmSet, Dihedral, ImageHashes};
use crate::matcher::{Access, ScreenOptions};

/// Answers to one ScreenStream that may be in flight at once; past that the server stops reading
/// the stream until some are answered (HTTP/2 flow control then holds the client back).
const STREAM_IN_FLIGHT: usize = 256;

/// `vigie.v1.Screening`: Screen, ScreenStream and Hash.
pub struct ScreeningService {
    /// What every handler shares.
    pub state: Arc<ServiceState>,
}

/// When the request's headers reached the server (stamped by the server's outermost layer), so a
/// deadline counts the time spent receiving a large message, as the client's clock does.
#[derive(Clone, Copy, Debug)]
pub struct ArrivedAt(pub Instant);

/// The client's deadline (`grpc-timeout`), counted from the request's arrival ([`ArrivedAt`], else
/// now), less a margin (a fifth, at most 50 ms) so that vigie's DEADLINE_EXCEEDED reaches the
/// client before the client's own timer gives up, even though the client's clock started before
/// the request was sent.
pub fn deadline_of<T>(request: &Request<T>) -> Option<Instant> {
    let value = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    let timeout = match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    };
    let margin = (timeout / 5).min(Duration::from_millis(50));
    let arrived = request
        .extensions()
        .get::<ArrivedAt>()
        .map_or_else(Instant::now, |a| a.0);
    Some(arrived + timeout.saturating_sub(margin))
}

/// How long work may wait for a hashing permit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// At most `queue_wait`, then RESOURCE_EXHAUSTED: a unary caller is told at once that the
    /// server is saturated, and requests do not pile up in memory.
    Queue,
    /// Until the deadline: an item of a `ScreenStream`, whose stream already bounds what is in
    /// memory (`ServiceLimits::stream_bytes`, `STREAM_IN_FLIGHT`) and pushes back on the client
    /// through HTTP/2 flow control, so a batch keeps the workers busy instead of being refused.
    /// Such items first take one of `ServiceState::stream_permits` (all workers but one), so a
    /// unary call never queues behind a stream's backlog.
    Patient,
}

/// Runs CPU-bound work off the async runtime, bounded by the hashing permits, under the deadline.
/// Waits for a permit as `admission` says, then refuses (RESOURCE_EXHAUSTED) rather than letting
/// requests pile up in memory. A panic in `work` answers INTERNAL; the server lives on.
pub async fn run_bounded<T: Send + 'static>(
    state: &ServiceState,
    deadline: Option<Instant>,
    admission: Admission,
    work: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    let queue_wait = match admission {
        Admission::Queue => state.limits.queue_wait,
        // Without a deadline, an hour stands for "as long as it takes" (the stream's own bound
        // keeps memory in check).
        Admission::Patient => Duration::from_secs(3600),
    };
    let wait = match deadline {
        Some(d) => queue_wait.min(d.saturating_duration_since(Instant::now())),
        None => queue_wait,
    };
    // A stream item first takes one of the workers streams may share (all but one), so unary
    // calls always find a worker within a hash's time instead of queueing behind a backlog.
    let acquire = async {
        let share = match admission {
            Admission::Patient => Some(state.stream_permits.clone().acquire_owned().await?),
            Admission::Queue => None,
        };
        let permit = state.hash_permits.clone().acquire_owned().await?;
        Ok::<_, tokio::sync::AcquireError>((share, permit))
    };
    let permit = match tokio::time::timeout(wait, acquire).await {
        Ok(Ok(permit)) => permit,
        Ok(Err(_)) => return Err(ServiceError::Unavailable),
        Err(_) => {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(ServiceError::DeadlineExceeded);
            }
            return Err(ServiceError::Overloaded(
                "every hashing worker is busy; retry with backoff".into(),
            ));
        }
    };
    let task = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    });
    let joined = match deadline {
        // Past the deadline the answer is sent at once; the blocking task finishes on its own and
        // its result is dropped.
        Some(d) => match tokio::time::timeout_at(d.into(), task).await {
            Ok(j) => j,
            Err(_) => return Err(ServiceError::DeadlineExceeded),
        },
        None => task.await,
    };
    match joined {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(ServiceError::Internal("a request handler panicked".into())),
        Err(_) => Err(ServiceError::Internal(
            "a request handler was cancelled".into(),
        )),
    }
}

impl ScreeningService {
    async fn screen_one(
        &self,
        request: ScreenRequest,
        access: Arc<Access>,
        deadline: Option<Instant>,
        admission: Admission,
    ) -> Result<ScreenResponse, ServiceError> {
        if !self.state.is_ready() {
            return Err(ServiceError::Unavailable);
        }
        // The key's rate first: a refused screen costs no hashing.
        self.state.admit(&access)?;
        let options = ScreenOptions {
            banks: request.banks.clone(),
            max_distance: request.max_distance,
            ..ScreenOptions::default()
        };
        for name in &options.banks {
            crate::store::validate_bank_name(name)
                .map_err(|e| ServiceError::invalid("banks", "invalid_bank", e.to_string()))?;
        }
        let request_id = request.request_id;
        let state = self.state.clone();
        let (hashes, outcome) = match request.input {
            None => {
                return Err(ServiceError::invalid(
                    "input",
                    "missing_input",
                    "set either image or hashes",
                ));
            }
            Some(screen_request::Input::Image(bytes)) => {
                if bytes.len() > state.limits.max_image_bytes {
                    return Err(ServiceError::TooLarge(format!(
                        "image of {} bytes exceeds the limit of {}",
                        bytes.len(),
                        state.limits.max_image_bytes
                    )));
                }
                let work_state = state.clone();
                let work_access = access.clone();
                let result = run_bounded(&state, deadline, admission, move || {
                    let screened = work_state.guard.screen_image(
                        &work_state.banks,
                        &work_access,
                        &bytes,
                        &options,
                    )?;
                    Ok((computed_hashes(&screened.hashes), screened.outcome))
                })
                .await;
                if let Err(ServiceError::BadImage(e)) = &result {
                    state.metrics.record_decode_error(e.kind.as_str());
                }
                result?
            }
            Some(screen_request::Input::Hashes(set)) => {
                let parsed = parse_hash_set(&set, "hashes")?;
                if !parsed.more.is_empty() {
                    return Err(ServiceError::invalid(
                        "hashes.more",
                        "invalid_hash",
                        "a screen takes one hash of each algorithm: send the others in their own requests",
                    ));
                }
                if parsed.is_empty() {
                    return Err(ServiceError::invalid(
                        "hashes",
                        "missing_input",
                        "no hash given",
                    ));
                }
                let work_state = state.clone();
                let query_hashes = parsed.clone();
                let work_access = access.clone();
                let outcome = run_bounded(&state, deadline, admission, move || {
                    Ok(work_state.guard.screen_hashes(
                        &work_state.banks,
                        &work_access,
                        &query_hashes,
                        &options,
                    )?)
                })
                .await?;
                let echoed = parsed
                    .iter()
                    .map(|v| super::proto::ComputedHash {
                        algorithm: v.algorithm().name().into(),
                        hex: v.to_hex(),
                        quality: -1,
                    })
                    .collect();
                (echoed, outcome)
            }
        };
        for m in &outcome.matches {
            state.metrics.record_match(&m.bank);
        }
        Ok(ScreenResponse {
            request_id,
            hashes,
            matched: outcome.matched,
            matches: outcome.matches.iter().map(to_proto_match).collect(),
            notes: outcome.notes,
            error: None,
            detail: access.detail.name().into(),
        })
    }
}

fn item_error(request_id: String, e: ServiceError) -> ScreenResponse {
    let kind = e.kind().to_string();
    let status = Status::from(e);
    ScreenResponse {
        request_id,
        error: Some(ItemError {
            code: status.code() as i32,
            kind,
            message: status.message().to_string(),
        }),
        ..Default::default()
    }
}

type ScreenStreamOut = Pin<Box<dyn Stream<Item = Result<ScreenResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Screening for Arc<ScreeningService> {
    async fn screen(
        &self,
        request: Request<ScreenRequest>,
    ) -> Result<Response<ScreenResponse>, Status> {
        let started = Instant::now();
        let deadline = deadline_of(&request);
        let result = match super::auth::caller(&request) {
            Ok(caller) => {
                let access = Arc::new(self.state.access(&caller));
                self.screen_one(request.into_inner(), access, deadline, Admission::Queue)
                    .await
            }
            Err(e) => Err(e),
        };
        self.state
            .finish("Screen", started, result.map(Response::new))
    }

    type ScreenStreamStream = ScreenStreamOut;

    async fn screen_stream(
        &self,
        request: Request<Streaming<ScreenRequest>>,
    ) -> Result<Response<Self::ScreenStreamStream>, Status> {
        let deadline = deadline_of(&request);
        let caller = super::auth::caller(&request)?;
        let access = Arc::new(self.state.access(&caller));
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel::<Result<ScreenResponse, Status>>(STREAM_IN_FLIGHT);
        let service = self.clone();
        let in_flight = Arc::new(tokio::sync::Semaphore::new(STREAM_IN_FLIGHT));
        // This stream's share: its bytes in memory, and as many items at the workers as streams
        // may hold together, so that two streams' items alternate at the shared workers.
        let limits = &self.state.limits;
        let own_capacity = super::kib_permits(limits.stream_bytes);
        let all_capacity = super::kib_permits(limits.streams_bytes);
        let own_bytes = Arc::new(tokio::sync::Semaphore::new(own_capacity));
        let own_workers = Arc::new(tokio::sync::Semaphore::new(super::stream_worker_share(
            limits.hash_workers,
        )));
        let all_bytes = self.state.stream_bytes.clone();
        tokio::spawn(async move {
            loop {
                let next = inbound.next().await;
                let item = match next {
                    None => break,
                    Some(Ok(item)) => item,
                    Some(Err(status)) => {
                        // The inbound stream is broken (e.g. a message over the size limit): say so
                        // and stop reading it.
                        let code = if status.code() == tonic::Code::OutOfRange {
                            tonic::Code::ResourceExhausted
                        } else {
                            status.code()
                        };
                        let _ = tx
                            .send(Err(Status::new(code, status.message().to_string())))
                            .await;
                        break;
                    }
                };
                // The item is in memory: hold its bytes against both budgets until it is
                // answered; while they are spent the stream is not read further.
                let cost = super::kib_permits(prost::Message::encoded_len(&item));
                let (Ok(own), Ok(all), Ok(worker), Ok(permit)) = (
                    own_bytes
                        .clone()
                        .acquire_many_owned(cost.min(own_capacity) as u32)
                        .await,
                    all_bytes
                        .clone()
                        .acquire_many_owned(cost.min(all_capacity) as u32)
                        .await,
                    own_workers.clone().acquire_owned().await,
                    in_flight.clone().acquire_owned().await,
                ) else {
                    break;
                };
                let (service, tx, access) = (service.clone(), tx.clone(), access.clone());
                tokio::spawn(async move {
                    let _permits = (own, all, worker, permit);
                    let started = Instant::now();
                    let request_id = item.request_id.clone();
                    let result = service
                        .screen_one(item, access, deadline, Admission::Patient)
                        .await;
                    let code = result
                        .as_ref()
                        .map_or_else(|e| e.code(), |_| tonic::Code::Ok);
                    service.state.metrics.record_request(
                        "ScreenStream.item",
                        code,
                        started.elapsed(),
                    );
                    let answer = result.unwrap_or_else(|e| item_error(request_id, e));
                    let _ = tx.send(Ok(answer)).await;
                });
            }
        });
        Ok(Response::new(
            Box::pin(ReceiverStream::new(rx)) as Self::ScreenStreamStream
        ))
    }

    async fn hash(&self, request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        let started = Instant::now();
        let deadline = deadline_of(&request);
        let result = self.hash_one(request.into_inner(), deadline).await;
        self.state
            .finish("Hash", started, result.map(Response::new))
    }
}

impl ScreeningService {
    async fn hash_one(
        &self,
        request: HashRequest,
        deadline: Option<Instant>,
    ) -> Result<HashResponse, ServiceError> {
        if request.image.is_empty() {
            return Err(ServiceError::BadImage(crate::hashing::DecodeError {
                kind: crate::hashing::DecodeErrorKind::Empty,
                limit: None,
                message: "no image bytes".into(),
            }));
        }
        if request.image.len() > self.state.limits.max_image_bytes {
            return Err(ServiceError::TooLarge(format!(
                "image of {} bytes exceeds the limit of {}",
                request.image.len(),
                self.state.limits.max_image_bytes
            )));
        }
        let algorithms = if request.algorithms.is_empty() {
            AlgorithmSet::all()
        } else {
            AlgorithmSet::parse(&request.algorithms.join(","))
                .map_err(|e| ServiceError::invalid("algorithms", "invalid_algorithm", e))?
        };
        let hasher = self.state.banks.setup().plain(algorithms, request.dihedral);
        let image = request.image;
        let result = run_bounded(&self.state, deadline, Admission::Queue, move || {
            Ok(hasher.hash_bytes(&image)?)
        })
        .await;
        if let Err(ServiceError::BadImage(e)) = &result {
            self.state.metrics.record_decode_error(e.kind.as_str());
        }
        let h: ImageHashes = result?;
        Ok(HashResponse {
            hashes: computed_hashes(&h),
            width: h.width,
            height: h.height,
            pdq_dihedral: h
                .pdq_dihedral
                .map(|all| {
                    Dihedral::ALL
                        .iter()
                        .zip(all)
                        .skip(1)
                        .map(|(t, p)| TransformedHash {
                            transform: t.name().into(),
                            hex: p.hash.to_hex(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            pdq_meta: h.pdq_meta.map(|p| super::proto::ComputedHash {
                algorithm: "pdq".into(),
                hex: p.hash.to_hex(),
                quality: i32::from(p.quality),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashing::HashingSetup;
    use crate::matcher::LiveBanks;
    use crate::service::ServiceLimits;
    use crate::service::metrics::Metrics;
    use crate::store::Store;

    fn state(workers: usize, queue_wait: Duration) -> ServiceState {
        let limits = ServiceLimits {
            hash_workers: workers,
            queue_wait,
            ..ServiceLimits::default()
        };
        ServiceState::new(
            Arc::new(LiveBanks::new(
                Arc::new(Store::in_memory()),
                HashingSetup::default(),
            )),
            limits,
            Arc::new(Metrics::default()),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_in_one_request_answers_internal_and_the_next_request_works() {
        let state = state(1, Duration::from_secs(1));
        let panicked: Result<(), ServiceError> =
            run_bounded(&state, None, Admission::Queue, || panic!("decoder bug")).await;
        assert!(
            matches!(panicked, Err(ServiceError::Internal(_))),
            "{panicked:?}"
        );
        assert_eq!(
            Status::from(panicked.unwrap_err()).code(),
            tonic::Code::Internal
        );
        // The permit came back: the single worker serves the next request.
        assert_eq!(
            run_bounded(&state, None, Admission::Queue, || Ok(7))
                .await
                .ok(),
            Some(7)
        );
    }

    #[test]
    fn grpc_timeout_header_parses_with_a_margin() {
        let mut r = Request::new(());
        r.metadata_mut()
            .insert("grpc-timeout", "1S".parse().unwrap());
        let d = deadline_of(&r)
            .unwrap()
            .saturating_duration_since(Instant::now());
        assert!(
            d <= Duration::from_millis(950) && d > Duration::from_millis(800),
            "{d:?}"
        );
        r.metadata_mut()
            .insert("grpc-timeout", "bogus".parse().unwrap());
        assert!(deadline_of(&r).is_none());
    }
}
