//! Clustered mode (`vigie serve --nats URL[,URL...]`): replicas that share their banks through one
//! replicated, ordered log of bank changes — a NATS JetStream stream — instead of anything vigie
//! replicates itself.
//!
//! Every bank change (a [`Change`] with its [`Origin`]) is published to the stream; every replica,
//! the writer included, applies the stream in order through the core's [`LiveBanks`], so replicas
//! that applied the same prefix hold the same banks, entry ids included. A write returns only once
//! the stream acknowledged it (JetStream acknowledges once a majority of the stream's replicas
//! stored it) **and** this replica applied it, so a client reads its own writes on the replica it
//! wrote to. The last applied sequence is written in the same store batch as the change, so a
//! restart resumes exactly after it. Snapshots in an object store bucket ([`snapshots`]) let a new
//! replica, or one the stream's retention left behind, start without the stream's whole history.
//!
//! The edges write through [`BankWriter`], implemented by [`LiveBanks`] (one node, embedded) and
//! by [`ClusterWriter`]; the core never imports this module. Design and guarantees:
//! `docs/CLUSTER.md`.
//!
//! Without the `store` feature (the fuzz build) a replica cannot be started ([`Cluster`] opens a
//! RocksDB store); the writer, the envelope and the import path stay, and the replica's helpers
//! are still compiled, unused.
#![cfg_attr(not(feature = "store"), allow(dead_code, unused_imports))]

pub mod envelope;
pub mod local;
pub mod progress;
pub mod snapshots;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, context::PublishErrorKind, stream};
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::hashing::HashingSetup;
use crate::matcher::LiveBanks;
use crate::store::formats::{self, FormatError, ImportOptions, ImportSummary};
use crate::store::{Applied, Change, Origin, RocksOptions, Store, StoreError};
use progress::Progress;

pub use crate::config::ClusterConfig;

impl ClusterConfig {
    /// The stream's subject.
    pub fn subject(&self) -> String {
        format!("{}.changes", self.stream)
    }

    /// The core NATS subject on which joining replicas ask for a snapshot.
    pub fn wanted_subject(&self) -> String {
        format!("{}.{}", self.stream, snapshots::WANTED)
    }
}

/// Why joining or running in the cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// NATS could not be reached or refused a request.
    #[error("NATS: {0}")]
    Nats(String),
    /// A snapshot could not be published or restored.
    #[error("snapshot: {0}")]
    Snapshot(String),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The local store and the stream do not belong together.
    #[error("{0}")]
    Refused(String),
}

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The change was applied and refused by the store (the same on every replica): a bank that
    /// exists, an unknown entry, an invalid value... Or, before anything was published, this
    /// replica's disk is full ([`StoreError::StorageFull`]).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stream did not acknowledge the change in time (its quorum is lost or NATS is
    /// unreachable), or this replica cannot apply the stream. Nothing was acknowledged; the
    /// change may still be applied later if the stream stored it just before the failure.
    #[error("the cluster cannot take writes: {0}")]
    Unavailable(String),
    /// The stream acknowledged the change (at `sequence`, so every replica will apply it) but this
    /// replica did not apply it in time.
    #[error(
        "the change is committed to the cluster's stream at sequence {sequence} but this replica has not applied it yet"
    )]
    NotYetApplied {
        /// Stream sequence of the committed change.
        sequence: u64,
    },
    /// The change is larger than the NATS servers accept in one message.
    #[error("{0}")]
    TooLarge(String),
    /// A bug or a lost task.
    #[error("internal: {0}")]
    Internal(String),
}

/// Where the edges send bank changes: applied locally (one node) or through the cluster's stream.
/// Blocking: call it from a blocking thread (`tokio::task::spawn_blocking`), never on an async
/// worker.
pub trait BankWriter: Send + Sync {
    /// Apply `change`, made by `origin`, and return its outcome once it is applied here (and, in a
    /// cluster, committed to the stream). Errors: [`WriteError`].
    fn write(&self, change: Change, origin: &Origin) -> Result<Applied, WriteError>;
}

impl BankWriter for LiveBanks {
    fn write(&self, change: Change, origin: &Origin) -> Result<Applied, WriteError> {
        Ok(self.apply(change, origin)?)
    }
}

/// Why an import through a [`BankWriter`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The input or the store refused it (see [`formats::import_with`]).
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A batch could not be committed.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// Import a hash list into `bank` through `writer`: each batch one [`Change::UpsertEntries`],
/// then one [`Change::RecordImport`], as [`LiveBanks::import`] does on one node. Errors: as
/// [`formats::import_with`], or the [`WriteError`] of the batch that could not be committed
/// (batches committed before it stay).
pub fn import(
    writer: &dyn BankWriter,
    store: &Store,
    bank: &str,
    reader: impl std::io::BufRead,
    options: &ImportOptions,
    origin: &Origin,
) -> Result<ImportSummary, ImportError> {
    let mut failed = None;
    let result = formats::import_with(
        &mut |change| {
            writer.write(change, origin).map_err(|e| match e {
                WriteError::Store(e) => e,
                other => {
                    // import_with speaks StoreError: keep the real error for the caller.
                    let message = other.to_string();
                    failed = Some(other);
                    StoreError::Backend(message)
                }
            })
        },
        store,
        bank,
        reader,
        options,
        &mut |_| {},
    );
    match (result, failed) {
        (Err(_), Some(write)) => Err(ImportError::Write(write)),
        (result, _) => Ok(result?),
    }
}

/// Whether the store refused `e` by its own rules (the same on every replica that applied the
/// same changes before), as opposed to failing (I/O, corruption), which may not happen elsewhere.
pub fn is_deterministic(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Invalid(_)
            | StoreError::UnknownAlgorithm(_)
            | StoreError::BankExists(_)
            | StoreError::BankNotFound(_)
            | StoreError::EntryNotFound(_)
    )
}

type Outcome = Result<Applied, StoreError>;

/// Writers waiting for their change to be applied here, by message id.
#[derive(Default)]
struct Waiters(Mutex<HashMap<String, oneshot::Sender<Outcome>>>);

impl Waiters {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Outcome>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Removes a writer's registration however the write ends.
struct Registration<'a> {
    waiters: &'a Waiters,
    id: String,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.waiters.lock().remove(&self.id);
    }
}

/// The clustered [`BankWriter`]: publish, wait for the acknowledgement, wait for the local apply.
pub struct ClusterWriter {
    js: jetstream::Context,
    subject: String,
    waiters: Arc<Waiters>,
    progress: Arc<Progress>,
    write_timeout: Duration,
    runtime: tokio::runtime::Handle,
    /// This replica's store: a write is refused before it reaches the stream while the store
    /// refuses writes for want of space.
    store: Arc<Store>,
}

/// How long one publish attempt waits for its acknowledgement before it is sent again (with the
/// same message id, so the stream keeps one copy).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);

impl ClusterWriter {
    /// The write, asynchronously: [`BankWriter::write`] runs this on the runtime.
    pub async fn write_async(
        &self,
        change: Change,
        origin: &Origin,
    ) -> Result<Applied, WriteError> {
        if let Some(reason) = self.progress.stalled() {
            return Err(WriteError::Unavailable(format!(
                "this replica stopped applying the stream ({reason})"
            )));
        }
        // A full disk here: refused before the stream takes the change. Once published, every
        // replica must apply it, this one included, and this one could not until space is freed
        // (its applier retries until then), so the writer would only hear of a timeout.
        if !self.store.writes_available() {
            return Err(WriteError::Store(StoreError::StorageFull(
                "this replica's disk is full: writes resume once space is freed (screens go on)"
                    .into(),
            )));
        }
        let payload = envelope::encode(&change, origin)
            .map_err(|e| WriteError::Internal(format!("encoding a change: {e}")))?;
        let payload = bytes::Bytes::from(payload);
        let id = message_id();
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().insert(id.clone(), tx);
        let _registration = Registration {
            waiters: &self.waiters,
            id: id.clone(),
        };
        let started = Instant::now();
        let deadline = started + self.write_timeout;
        let mut last_error = String::from("no answer");
        let sequence = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(WriteError::Unavailable(format!(
                    "no acknowledgement from the stream in {:?} ({last_error})",
                    self.write_timeout
                )));
            }
            let publish = jetstream::message::PublishMessage::build()
                .payload(payload.clone())
                .message_id(&id);
            let attempt = async {
                let ack = self.js.send_publish(self.subject.clone(), publish).await?;
                ack.await
            };
            match tokio::time::timeout(remaining.min(ATTEMPT_TIMEOUT), attempt).await {
                Ok(Ok(ack)) => break ack.sequence,
                Ok(Err(e)) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                    return Err(WriteError::TooLarge(format!(
                        "the change is {} bytes, more than the NATS servers accept in one message ({} bytes): send fewer entries per call, or raise max_payload on the servers",
                        payload.len(),
                        self.js.client().server_info().max_payload
                    )));
                }
                Ok(Err(e)) => {
                    last_error = e.to_string();
                    // No responders (no stream leader) answers at once: do not spin.
                    let pause = Duration::from_millis(50).min(remaining);
                    tokio::time::sleep(pause).await;
                }
                Err(_) => last_error = "timed out".into(),
            }
        };
        self.progress.saw_head(sequence);
        match tokio::time::timeout(self.write_timeout, rx).await {
            Ok(Ok(outcome)) => Ok(outcome?),
            Ok(Err(_)) => Err(WriteError::Internal(
                "the applier stopped before applying the change".into(),
            )),
            Err(_) => Err(WriteError::NotYetApplied { sequence }),
        }
    }
}

impl BankWriter for ClusterWriter {
    fn write(&self, change: Change, origin: &Origin) -> Result<Applied, WriteError> {
        self.runtime.block_on(self.write_async(change, origin))
    }
}

/// A fresh random message id (128 bits, hex): the stream's deduplication key for one write.
fn message_id() -> String {
    use rand::{RngCore, SeedableRng};
    let mut bytes = [0u8; 16];
    rand::rngs::StdRng::from_os_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(feature = "store")]
/// A replica in the cluster: its live banks, its writer, its position, and the tasks that keep
/// it applying the stream and publishing snapshots.
pub struct Cluster {
    /// The banks this replica serves screens from.
    pub live: Arc<LiveBanks>,
    /// Their store.
    pub store: Arc<Store>,
    /// What the edges write through.
    pub writer: Arc<ClusterWriter>,
    /// Position, lag, readiness.
    pub progress: Arc<Progress>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    applier: Option<std::thread::JoinHandle<()>>,
    client: async_nats::Client,
}

/// One message handed from the consumer task to the apply thread.
struct Delivery {
    seq: u64,
    id: Option<String>,
    published_unix_nanos: i128,
    payload: bytes::Bytes,
}

#[cfg(feature = "store")]
impl Cluster {
    /// Join the cluster with the store in `data_dir`: connect, create the stream and the snapshot
    /// bucket when missing, restore the newest snapshot when this store is new to the stream or
    /// behind its retention, load the index, and start applying from the last applied sequence.
    /// Returns at once after that; [`Progress::watch_ready`] says when the replica has caught up.
    /// Errors: NATS unreachable within `start_timeout`, a store that belongs to another stream (or
    /// holds banks made outside the cluster), a failed restore.
    pub async fn start(
        config: &ClusterConfig,
        data_dir: &Path,
        options: &RocksOptions,
        setup: HashingSetup,
    ) -> Result<Cluster, ClusterError> {
        config
            .validate()
            .map_err(|(setting, why)| ClusterError::Refused(format!("{setting}: {why}")))?;
        let client = async_nats::ConnectOptions::new()
            .name("vigie")
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connect(config.servers.clone())
            .await
            .map_err(|e| ClusterError::Nats(format!("connecting to {:?}: {e}", config.servers)))?;
        let js = jetstream::ContextBuilder::new()
            .timeout(ATTEMPT_TIMEOUT.max(Duration::from_secs(2)))
            .build(client.clone());
        let start_deadline = Instant::now() + config.start_timeout;
        let info = retry_until(start_deadline, "creating the change stream", || {
            ensure_stream(&js, config)
        })
        .await?;
        let bucket = retry_until(start_deadline, "opening the snapshot bucket", || {
            snapshots::ensure_bucket(&js, &config.stream, config.replicas)
        })
        .await?;
        snapshots::recover_dirs(data_dir)
            .map_err(|e| ClusterError::Snapshot(format!("{}: {e}", data_dir.display())))?;

        // Does this store continue the stream, or must it start from a snapshot?
        let first = info.state.first_sequence;
        let last = info.state.last_sequence;
        let needs_snapshot = {
            let store = Store::open(data_dir, options)?;
            let applied = store.applied_sequence()?;
            let has_data = !store.list_banks()?.is_empty() || !store.list_api_keys()?.is_empty();
            match applied {
                None if has_data => {
                    return Err(ClusterError::Refused(format!(
                        "{} holds banks or keys made outside a cluster: start a replica on an empty directory and bring the data in through the API",
                        data_dir.display()
                    )));
                }
                Some(a) if a > last => {
                    return Err(ClusterError::Refused(format!(
                        "this store applied changes up to sequence {a} but stream {} ends at {last}: it belongs to another stream (or the stream was recreated); start on an empty directory",
                        config.stream
                    )));
                }
                applied => applied.unwrap_or(0) + 1 < first && last > 0,
            }
        };
        let restored = if needs_snapshot {
            restore_newest(
                &client,
                &bucket,
                config,
                data_dir,
                options,
                first,
                start_deadline,
            )
            .await?
        } else {
            None
        };
        // Applied changes are written without a synced WAL and synced once per group (see
        // `apply_loop`): one fsync a change made replay fsync-bound.
        let unsynced = RocksOptions {
            sync_writes: false,
            ..options.clone()
        };
        let store = Arc::new(Store::open(data_dir, &unsynced)?);
        let applied = store.applied_sequence()?.unwrap_or(0);
        let started = Instant::now();
        let for_load = store.clone();
        let live = Arc::new(
            tokio::task::spawn_blocking(move || LiveBanks::open(for_load, setup))
                .await
                .map_err(|e| ClusterError::Nats(format!("index load task: {e}")))??,
        );
        tracing::info!(
            applied,
            stream_first = first,
            stream_last = last,
            load_ms = started.elapsed().as_millis() as u64,
            "replica joined the cluster; replaying from the last applied change"
        );
        let progress = Arc::new(Progress::new(applied, last, config.max_lag));
        if let Some(seq) = restored {
            progress.restored_from(seq);
        }
        let waiters = Arc::new(Waiters::default());
        let (stop, stop_rx) = watch::channel(false);
        let (tx, rx) = mpsc::channel::<Delivery>(4096);
        let applier = {
            let live = live.clone();
            let progress = progress.clone();
            let waiters = waiters.clone();
            let sync = options.sync_writes;
            let stop = stop_rx.clone();
            std::thread::Builder::new()
                .name("vigie-apply".into())
                .spawn(move || apply_loop(rx, &live, &progress, &waiters, sync, &stop))
                .map_err(|e| ClusterError::Nats(format!("apply thread: {e}")))?
        };
        let tasks = vec![
            tokio::spawn(consume(
                js.clone(),
                config.stream.clone(),
                applied,
                tx,
                progress.clone(),
                stop_rx.clone(),
            )),
            tokio::spawn(watch_head(
                js.clone(),
                config.stream.clone(),
                progress.clone(),
                stop_rx.clone(),
            )),
            tokio::spawn(publish_snapshots(
                client.clone(),
                bucket,
                live.clone(),
                progress.clone(),
                config.clone(),
                snapshots::sibling(data_dir, "snapshot-out"),
                stop_rx,
            )),
        ];
        let writer = Arc::new(ClusterWriter {
            js,
            subject: config.subject(),
            waiters,
            progress: progress.clone(),
            write_timeout: config.write_timeout,
            runtime: tokio::runtime::Handle::current(),
            store: store.clone(),
        });
        Ok(Cluster {
            live,
            store,
            writer,
            progress,
            stop,
            tasks,
            applier: Some(applier),
            client,
        })
    }

    /// Stop applying and publishing, and wait for the apply thread to finish its change.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            task.abort();
            let _ = task.await;
        }
        if let Some(applier) = self.applier.take() {
            let _ = tokio::task::spawn_blocking(move || applier.join()).await;
        }
        let _ = self.client.flush().await;
    }
}

/// Run `f` until it succeeds or `deadline` passes (then its last error), pausing between tries:
/// a NATS cluster that is starting elects its JetStream leaders for a few seconds.
async fn retry_until<T, F, Fut>(deadline: Instant, what: &str, mut f: F) -> Result<T, ClusterError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClusterError>>,
{
    let mut pause = Duration::from_millis(100);
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() + pause < deadline => {
                tracing::debug!(error = %e, "{what}: retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(ClusterError::Nats(format!("{what}: {e}"))),
        }
    }
}

/// The stream, created with the configured replicas and retention when missing. Returns its
/// current state.
async fn ensure_stream(
    js: &jetstream::Context,
    config: &ClusterConfig,
) -> Result<stream::Info, ClusterError> {
    let mut stream = js
        .get_or_create_stream(stream::Config {
            name: config.stream.clone(),
            subjects: vec![config.subject()],
            num_replicas: config.replicas,
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            max_messages: if config.max_changes == 0 {
                -1
            } else {
                i64::try_from(config.max_changes).unwrap_or(i64::MAX)
            },
            max_age: config.max_age,
            // Retried publishes carry the same id for at most `write_timeout`; keep ids longer.
            duplicate_window: (config.write_timeout * 4).max(Duration::from_secs(120)),
            description: Some("vigie bank changes".into()),
            ..Default::default()
        })
        .await
        .map_err(|e| ClusterError::Nats(e.to_string()))?;
    let info = stream
        .info()
        .await
        .map_err(|e| ClusterError::Nats(e.to_string()))?
        .clone();
    if info.config.num_replicas != config.replicas {
        tracing::warn!(
            stream = %config.stream,
            existing = info.config.num_replicas,
            configured = config.replicas,
            "the stream exists with another replica count; keeping the existing one"
        );
    }
    Ok(info)
}

#[cfg(feature = "store")]
/// Restore the bucket's newest snapshot into `data_dir`, asking the running replicas for a fresh
/// one while the bucket has none that reaches the stream's first sequence.
async fn restore_newest(
    client: &async_nats::Client,
    bucket: &jetstream::object_store::ObjectStore,
    config: &ClusterConfig,
    data_dir: &Path,
    options: &RocksOptions,
    first: u64,
    deadline: Instant,
) -> Result<Option<u64>, ClusterError> {
    loop {
        match snapshots::newest_sequence(bucket).await {
            Ok(Some(seq)) if seq + 1 >= first => {
                match snapshots::restore(bucket, data_dir, options).await {
                    Ok(info) => return Ok(info.applied_sequence),
                    // Replaced while it was read: take the newer one.
                    Err(e) if Instant::now() < deadline => {
                        tracing::warn!(error = %e, "snapshot restore failed; retrying")
                    }
                    Err(e) => return Err(e),
                }
            }
            seen => {
                let _ = client
                    .publish(config.wanted_subject(), bytes::Bytes::new())
                    .await;
                if Instant::now() >= deadline {
                    return Err(ClusterError::Snapshot(format!(
                        "the stream starts at sequence {first} and no snapshot reaches it ({seen:?}); is any replica running?"
                    )));
                }
                tracing::info!(
                    stream_first = first,
                    snapshot = ?seen.ok().flatten(),
                    "waiting for a snapshot that reaches the stream's first change"
                );
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A consumer that delivers nothing for this long while the replica is behind is recreated.
const STALLED_CONSUMER: Duration = Duration::from_secs(2);

/// Feed the apply thread with the stream from `applied + 1`, through an ordered consumer
/// (ephemeral, recreated by the client after failures), restarting it after errors.
async fn consume(
    js: jetstream::Context,
    stream_name: String,
    applied: u64,
    tx: mpsc::Sender<Delivery>,
    progress: Arc<Progress>,
    mut stop: watch::Receiver<bool>,
) {
    let mut next = applied + 1;
    loop {
        let messages = async {
            let stream = js
                .get_stream(&stream_name)
                .await
                .map_err(|e| e.to_string())?;
            let consumer = stream
                .create_consumer(consumer::pull::OrderedConfig {
                    deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                        start_sequence: next,
                    },
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string())?;
            consumer.messages().await.map_err(|e| e.to_string())
        };
        let mut messages = tokio::select! {
            _ = stop.changed() => return,
            m = messages => match m {
                Ok(m) => m,
                Err(e) => {
                    tracing::debug!(error = %e, "change consumer: retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            },
        };
        let mut last_delivery = Instant::now();
        let mut check = tokio::time::interval(Duration::from_millis(250));
        loop {
            let message = tokio::select! {
                _ = stop.changed() => return,
                m = messages.next() => m,
                _ = check.tick() => {
                    // The consumer lives on one NATS server: when that server dies, the client
                    // would only notice after missed heartbeats (tens of seconds). Behind the
                    // head and fed nothing for a while: recreate it where we are.
                    if progress.head() >= next && last_delivery.elapsed() >= STALLED_CONSUMER {
                        tracing::warn!(next, head = progress.head(), "the change consumer delivers nothing while behind; recreating it");
                        break;
                    }
                    continue;
                }
            };
            last_delivery = Instant::now();
            let message = match message {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "change consumer failed; recreating it");
                    break;
                }
                None => break,
            };
            let Ok(info) = message.info() else {
                continue;
            };
            let seq = info.stream_sequence;
            progress.saw_head(seq + info.pending);
            let delivery = Delivery {
                seq,
                id: message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                    .map(|v| v.as_str().to_string()),
                published_unix_nanos: info.published.unix_timestamp_nanos(),
                payload: message.payload.clone(),
            };
            if tx.send(delivery).await.is_err() {
                return;
            }
            next = seq + 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Learn the stream's head once a second, so that lag shows even when no message arrives.
///
/// The stream's state is the authority on its head. A head above the stream's last sequence in
/// two reports in a row (a second apart: whatever was acknowledged or delivered before the first
/// is in the second) is a sequence the stream does not hold — named by an acknowledgement or a
/// consumer around a NATS leader change — and is dropped (see [`Progress::stream_head`]).
async fn watch_head(
    js: jetstream::Context,
    stream_name: String,
    progress: Arc<Progress>,
    mut stop: watch::Receiver<bool>,
) {
    // The head that was above the stream's last sequence at the previous report.
    let mut unheld: Option<u64> = None;
    loop {
        if let Ok(mut stream) = js.get_stream(&stream_name).await
            && let Ok(info) = stream.info().await
        {
            let last = info.state.last_sequence;
            let head = progress.head();
            if head <= last {
                unheld = None;
                progress.saw_head(last);
            } else if unheld == Some(head) {
                unheld = None;
                if let Some(stale) = progress.stream_head(last) {
                    tracing::warn!(
                        stale,
                        stream_last = last,
                        applied = progress.applied(),
                        "the stream does not hold a sequence seen earlier (dropped around a NATS leader change); following the stream's own head"
                    );
                }
            } else {
                unheld = Some(head);
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Changes applied between two syncs of the write-ahead log at most, while more are queued.
const SYNC_GROUP: usize = 256;

/// Apply deliveries in stream order: each change with its sequence in one store batch, a refused
/// change by recording its sequence alone; hand each outcome to the writer waiting for it. A gap
/// (changes the stream no longer holds) or a change this build cannot read stops the replica:
/// applying past it would make it differ from the others.
///
/// With `sync` (the `sync_writes` setting), the store's batches are unsynced and the write-ahead
/// log is synced once no more changes are queued (or after [`SYNC_GROUP`] of them): group commit.
/// A writer hears of its change only after that sync, so an answered write is durable here as on
/// one node; a replay of thousands of changes costs a few fsyncs instead of one each. A power
/// loss before a sync loses only unsynced changes, and with their sequences (same batch, and
/// RocksDB recovers a prefix of its log): the replica replays them from the stream.
///
/// A full disk ([`StoreError::StorageFull`]) stops nothing: the change in hand is retried until
/// space is back (each retry may reopen the store, at most once a second), writers are refused
/// before publishing meanwhile ([`ClusterWriter`]), and screens go on from what was applied.
/// `stop` ends the loop even then: an unapplied change is replayed from the stream at restart.
fn apply_loop(
    mut rx: mpsc::Receiver<Delivery>,
    live: &LiveBanks,
    progress: &Progress,
    waiters: &Waiters,
    sync: bool,
    stop: &watch::Receiver<bool>,
) {
    let mut unsynced = 0usize;
    let mut answers: Vec<(oneshot::Sender<Outcome>, Outcome)> = Vec::new();
    while let Some(d) = rx.blocking_recv() {
        apply_one(d, live, progress, waiters, &mut answers, stop);
        if *stop.borrow() {
            return;
        }
        unsynced += 1;
        if rx.is_empty() || unsynced >= SYNC_GROUP {
            if sync && let Err(e) = retry_io(stop, || live.store().sync_wal()) {
                if !*stop.borrow() {
                    progress.stall(format!("syncing the write-ahead log: {e}"));
                }
                return;
            }
            unsynced = 0;
            for (waiter, outcome) in answers.drain(..) {
                let _ = waiter.send(outcome);
            }
        }
        if progress.stalled().is_some() {
            return;
        }
    }
}

/// Apply one delivery (see [`apply_loop`]); the outcome for a waiting writer goes to `answers`.
/// A gap or an unreadable change stalls `progress`.
fn apply_one(
    d: Delivery,
    live: &LiveBanks,
    progress: &Progress,
    waiters: &Waiters,
    answers: &mut Vec<(oneshot::Sender<Outcome>, Outcome)>,
    stop: &watch::Receiver<bool>,
) {
    let applied = progress.applied();
    if d.seq <= applied {
        return; // delivered again after a consumer was recreated
    }
    if d.seq > applied + 1 {
        progress.stall(format!(
            "the stream no longer holds changes {} to {} (its retention dropped them): restart this replica to load a snapshot",
            applied + 1,
            d.seq - 1
        ));
        return;
    }
    let envelope = match envelope::decode(&d.payload) {
        Ok(e) => e,
        Err(e) => {
            progress.stall(format!("change {}: {e}", d.seq));
            return;
        }
    };
    let started = Instant::now();
    let mut pause = Duration::from_millis(100);
    // The change is moved into the store; a retry decodes it again rather than every apply
    // cloning it (thousands of entries a change).
    let mut decoded = Some(envelope);
    let outcome = loop {
        let envelope = match decoded.take() {
            Some(e) => e,
            None => match envelope::decode(&d.payload) {
                Ok(e) => e,
                Err(e) => {
                    progress.stall(format!("change {}: {e}", d.seq));
                    return;
                }
            },
        };
        match live.apply_at_sequence(envelope.change, &envelope.origin, d.seq) {
            Ok(applied) => break Ok(applied),
            Err(e) if is_deterministic(&e) => {
                // Refused here as everywhere: nothing changed but the position.
                if let Err(store) = retry_io(stop, || live.store().record_sequence(d.seq)) {
                    if !*stop.borrow() {
                        progress.stall(format!("recording sequence {}: {store}", d.seq));
                    }
                    return;
                }
                break Err(e);
            }
            Err(e) => {
                // I/O (a full disk included), not the change: the same change must be applied,
                // so try again, until space is back or the replica stops.
                if *stop.borrow() {
                    return;
                }
                tracing::error!(sequence = d.seq, error = %e, "applying a change failed; retrying");
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    };
    let now_nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    let propagation = u64::try_from(now_nanos - d.published_unix_nanos)
        .ok()
        .map(Duration::from_nanos);
    progress.applied_one(d.seq, started.elapsed(), propagation);
    if let Some(id) = d.id
        && let Some(waiter) = waiters.lock().remove(&id)
    {
        answers.push((waiter, outcome));
    }
}

/// Retry a store write: a few times for an I/O error, and for a full disk
/// ([`StoreError::StorageFull`]) until space is back (pauses of 0.1 s doubling to 1.6 s),
/// since the replica must apply the change in hand before any other. Gives up with the last
/// error when `stop` is set.
fn retry_io(
    stop: &watch::Receiver<bool>,
    mut f: impl FnMut() -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut failures = 0u32;
    loop {
        match f() {
            Ok(()) => return Ok(()),
            Err(e) => {
                let full = matches!(e, StoreError::StorageFull(_));
                failures += 1;
                if *stop.borrow() || (!full && failures >= 5) {
                    return Err(e);
                }
                if failures == 1 || failures.is_multiple_of(30) {
                    tracing::warn!(error = %e, "store write failed; retrying");
                }
                std::thread::sleep(Duration::from_millis(100 << (failures - 1).min(4)));
            }
        }
    }
}

/// Publish snapshots when due (see [`snapshots`]), or when a joining replica asks for one.
async fn publish_snapshots(
    client: async_nats::Client,
    bucket: jetstream::object_store::ObjectStore,
    live: Arc<LiveBanks>,
    progress: Arc<Progress>,
    config: ClusterConfig,
    scratch: PathBuf,
    mut stop: watch::Receiver<bool>,
) {
    let mut wanted = client.subscribe(config.wanted_subject()).await.ok();
    let mut last_seq = snapshots::newest_sequence(&bucket)
        .await
        .ok()
        .flatten()
        .unwrap_or(0);
    let mut last_time = Instant::now();
    loop {
        let asked = tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(snapshots::CHECK_EVERY) => false,
            m = async {
                match wanted.as_mut() {
                    Some(w) => w.next().await,
                    None => std::future::pending().await,
                }
            } => m.is_some(),
        };
        let applied = progress.applied();
        if progress.stalled().is_some() || applied <= last_seq {
            continue;
        }
        let due = asked
            || applied - last_seq >= config.snapshot_changes
            || last_time.elapsed() >= config.snapshot_interval;
        if !due {
            continue;
        }
        if let Ok(Some(seq)) = snapshots::newest_sequence(&bucket).await {
            last_seq = last_seq.max(seq);
            if !asked
                && applied.saturating_sub(seq) < config.snapshot_changes
                && last_time.elapsed() < config.snapshot_interval
            {
                continue;
            }
        }
        match snapshots::publish(&bucket, &live, &scratch).await {
            Ok(Some(seq)) => {
                last_seq = seq;
                last_time = Instant::now();
                progress.snapshot_published(seq);
            }
            Ok(None) => last_time = Instant::now(),
            Err(e) => tracing::warn!(error = %e, "snapshot not published"),
        }
    }
}
