//! Snapshots of a replica's store in a JetStream object store bucket, so that a new replica (or
//! one whose position the stream's retention cut away) starts from the newest snapshot and
//! replays only what came after it.
//!
//! The bucket holds one object, [`OBJECT`], replaced by each publication; its metadata names the
//! stream sequence the snapshot covers ([`SEQUENCE_KEY`]). A replica publishes when it has applied
//! `snapshot_changes` changes past the bucket's snapshot, or when `snapshot_interval` has passed
//! and it has applied anything past it, or when a joining replica asks for one ([`WANTED`]
//! subject). Before publishing it reads the bucket's sequence, so replicas do not replace a newer
//! snapshot with an older one (a race between two of them only costs a replica a few extra
//! changes of replay).
//!
//! A restore never touches the live data directory until it is complete: it loads into
//! `<data>.restoring`, then moves the old directory aside, the new one in, and deletes the old
//! ([`recover_dirs`] finishes or undoes a move a crash interrupted).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::jetstream::object_store::{self, ObjectMetadata, ObjectStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::ClusterError;
use crate::matcher::LiveBanks;
use crate::store::snapshot::{self, SnapshotInfo};
#[cfg(feature = "store")]
use crate::store::{RocksBackend, RocksOptions};

/// Name of the snapshot object in the bucket.
pub const OBJECT: &str = "store";
/// Object metadata key: the stream sequence the snapshot covers (decimal).
pub const SEQUENCE_KEY: &str = "sequence";
/// Core NATS subject suffix on which a joining replica asks the others for a fresh snapshot.
pub const WANTED: &str = "snapshot-wanted";
/// Chunks of the object: well under NATS's default 1 MiB payload limit.
const CHUNK_BYTES: usize = 512 << 10;

/// The snapshot bucket of stream `stream`.
pub fn bucket_name(stream: &str) -> String {
    format!("{stream}_snapshots")
}

/// Open (or create) the snapshot bucket, replicated as the stream is. Errors: NATS's.
pub async fn ensure_bucket(
    js: &jetstream::Context,
    stream: &str,
    replicas: usize,
) -> Result<ObjectStore, ClusterError> {
    let name = bucket_name(stream);
    match js.get_object_store(&name).await {
        Ok(store) => Ok(store),
        Err(_) => js
            .create_object_store(object_store::Config {
                bucket: name.clone(),
                description: Some("vigie store snapshots (one object, replaced)".into()),
                num_replicas: replicas,
                ..Default::default()
            })
            .await
            .map_err(|create| ClusterError::Nats(format!("snapshot bucket {name}: {create}"))),
    }
}

/// The stream sequence the bucket's snapshot covers (`None`: no snapshot yet). Errors: NATS's
/// other than "not found".
pub async fn newest_sequence(bucket: &ObjectStore) -> Result<Option<u64>, ClusterError> {
    match bucket.info(OBJECT).await {
        Ok(info) if !info.deleted => {
            Ok(info.metadata.get(SEQUENCE_KEY).and_then(|s| s.parse().ok()))
        }
        Ok(_) => Ok(None),
        Err(e) if e.kind() == object_store::InfoErrorKind::NotFound => Ok(None),
        Err(e) => Err(ClusterError::Nats(format!("snapshot info: {e}"))),
    }
}

/// Write a snapshot of `live`'s store to `scratch` and publish it, unless the bucket already
/// holds one covering as much. Returns the sequence now covered by the bucket's snapshot by this
/// call (`None`: skipped).
pub async fn publish(
    bucket: &ObjectStore,
    live: &Arc<LiveBanks>,
    scratch: &Path,
) -> Result<Option<u64>, ClusterError> {
    let started = Instant::now();
    let path = scratch.to_path_buf();
    let store_live = live.clone();
    let info: SnapshotInfo = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::create(&path)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let info = store_live
            .store()
            .write_snapshot(&mut out)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        out.into_inner()
            .map_err(|e| std::io::Error::other(e.to_string()))?
            .sync_all()?;
        Ok::<_, std::io::Error>(info)
    })
    .await
    .map_err(|e| ClusterError::Snapshot(format!("snapshot task: {e}")))?
    .map_err(|e| ClusterError::Snapshot(format!("{}: {e}", scratch.display())))?;
    let Some(seq) = info.applied_sequence else {
        let _ = tokio::fs::remove_file(scratch).await;
        return Ok(None);
    };
    if newest_sequence(bucket).await?.is_some_and(|s| s >= seq) {
        let _ = tokio::fs::remove_file(scratch).await;
        return Ok(None);
    }
    let mut file = tokio::fs::File::open(scratch)
        .await
        .map_err(|e| ClusterError::Snapshot(format!("{}: {e}", scratch.display())))?;
    let mut metadata = HashMap::new();
    metadata.insert(SEQUENCE_KEY.to_string(), seq.to_string());
    metadata.insert("schema".to_string(), info.schema.to_string());
    metadata.insert("records".to_string(), info.records.to_string());
    let put = bucket
        .put(
            ObjectMetadata {
                name: OBJECT.to_string(),
                description: Some(format!("vigie store up to stream sequence {seq}")),
                chunk_size: Some(CHUNK_BYTES),
                metadata,
                ..Default::default()
            },
            &mut file,
        )
        .await;
    let _ = tokio::fs::remove_file(scratch).await;
    put.map_err(|e| ClusterError::Nats(format!("publishing the snapshot: {e}")))?;
    tracing::info!(
        sequence = seq,
        bytes = info.bytes,
        records = info.records,
        took_ms = started.elapsed().as_millis() as u64,
        "snapshot published"
    );
    Ok(Some(seq))
}

/// The scratch directory a restore loads into, beside `data`.
pub fn restoring_dir(data: &Path) -> PathBuf {
    sibling(data, "restoring")
}

fn replaced_dir(data: &Path) -> PathBuf {
    sibling(data, "replaced")
}

/// `<data>.<suffix>`, beside `data`.
pub fn sibling(data: &Path, suffix: &str) -> PathBuf {
    let mut name = data
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "vigie-data".into());
    name.push(".");
    name.push(suffix);
    data.with_file_name(name)
}

/// Finish or undo a directory swap that a crash interrupted: a half-loaded `<data>.restoring`
/// is deleted; `<data>.replaced` is put back when `<data>` is missing, else deleted.
pub fn recover_dirs(data: &Path) -> std::io::Result<()> {
    let restoring = restoring_dir(data);
    if restoring.exists() {
        std::fs::remove_dir_all(&restoring)?;
    }
    let replaced = replaced_dir(data);
    if replaced.exists() {
        if data.exists() {
            std::fs::remove_dir_all(&replaced)?;
        } else {
            std::fs::rename(&replaced, data)?;
        }
    }
    Ok(())
}

/// A snapshot download that receives nothing for this long has stalled and is abandoned (the
/// caller retries): generous for a chunk of a few hundred KB, short beside a replica's start.
pub const DOWNLOAD_STALL: Duration = Duration::from_secs(30);

/// Download the bucket's snapshot object into the file `download`; returns the stream sequence
/// its metadata says it covers (`None` when absent or unreadable).
///
/// The download runs in a task of its own: async-nats 0.50's object reader unwraps the result of
/// creating its consumer (`Object::poll_read`; nats-io/nats.rs issue 1615), so a JetStream request
/// that times out while the object store's stream is electing a leader (replicas restarted
/// together, a busy machine) panics the reading task. Inside a task, that panic is a
/// `JoinError` here, reported as [`ClusterError::Snapshot`], which the caller retries. A read
/// that receives nothing for [`DOWNLOAD_STALL`] (the object replaced and its chunks purged while it
/// was read) is an error too, never a wait without end.
/// Errors: no snapshot, NATS's, the file's, a stall or a panic of the reader.
#[cfg(feature = "store")]
async fn download_snapshot(
    bucket: ObjectStore,
    download: PathBuf,
) -> Result<Option<u64>, ClusterError> {
    let task = tokio::spawn(async move {
        let mut object = bucket
            .get(OBJECT)
            .await
            .map_err(|e| ClusterError::Snapshot(format!("no snapshot to start from: {e}")))?;
        let expected: Option<u64> = object
            .info()
            .metadata
            .get(SEQUENCE_KEY)
            .and_then(|s| s.parse().ok());
        let mut file = tokio::fs::File::create(&download)
            .await
            .map_err(|e| ClusterError::Snapshot(format!("{}: {e}", download.display())))?;
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            let read = tokio::time::timeout(DOWNLOAD_STALL, object.read(&mut buffer))
                .await
                .map_err(|_| {
                    ClusterError::Snapshot(format!(
                        "downloading the snapshot: nothing received for {} s",
                        DOWNLOAD_STALL.as_secs()
                    ))
                })?
                .map_err(|e| ClusterError::Snapshot(format!("downloading the snapshot: {e}")))?;
            if read == 0 {
                break;
            }
            file.write_all(&buffer[..read])
                .await
                .map_err(|e| ClusterError::Snapshot(format!("{}: {e}", download.display())))?;
        }
        file.flush()
            .await
            .map_err(|e| ClusterError::Snapshot(format!("{}: {e}", download.display())))?;
        Ok(expected)
    });
    match task.await {
        Ok(result) => result,
        Err(e) => Err(ClusterError::Snapshot(format!(
            "downloading the snapshot: the reader failed ({e})"
        ))),
    }
}

#[cfg(feature = "store")]
/// Download the bucket's snapshot and restore it as the store in `data` (replacing whatever is
/// there, which must not be open). Returns what was restored; its `applied_sequence` is where
/// replay resumes. Errors: no snapshot, NATS's, the restore's (the old directory is then left as
/// it was).
pub async fn restore(
    bucket: &ObjectStore,
    data: &Path,
    options: &RocksOptions,
) -> Result<SnapshotInfo, ClusterError> {
    let started = Instant::now();
    recover_dirs(data).map_err(|e| ClusterError::Snapshot(format!("{}: {e}", data.display())))?;
    let download = sibling(data, "snapshot-in");
    let expected = download_snapshot(bucket.clone(), download.clone()).await?;
    let downloaded = started.elapsed();
    let restoring = restoring_dir(data);
    let target = data.to_path_buf();
    let mut options = options.clone();
    // The loaded store is made durable once, at the end (`Backend::flush`), not batch by batch.
    options.sync_writes = false;
    let from = download.clone();
    let info = tokio::task::spawn_blocking(move || -> Result<SnapshotInfo, String> {
        let result = (|| {
            let backend = RocksBackend::open(&restoring, &options).map_err(|e| e.to_string())?;
            let file = std::fs::File::open(&from).map_err(|e| e.to_string())?;
            let mut input = std::io::BufReader::with_capacity(1 << 20, file);
            let info =
                snapshot::restore_snapshot(&backend, &mut input).map_err(|e| e.to_string())?;
            drop(backend);
            install(&target, &restoring).map_err(|e| e.to_string())?;
            Ok(info)
        })();
        let _ = std::fs::remove_file(&from);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&restoring);
        }
        result
    })
    .await
    .map_err(|e| ClusterError::Snapshot(format!("restore task: {e}")))?
    .map_err(ClusterError::Snapshot)?;
    if info.applied_sequence != expected {
        return Err(ClusterError::Snapshot(format!(
            "the snapshot's object says sequence {expected:?} but its store says {:?}",
            info.applied_sequence
        )));
    }
    tracing::info!(
        sequence = ?info.applied_sequence,
        bytes = info.bytes,
        records = info.records,
        download_ms = downloaded.as_millis() as u64,
        total_ms = started.elapsed().as_millis() as u64,
        "store restored from the cluster's snapshot"
    );
    Ok(info)
}

/// Put the complete `restoring` directory in place of `data`.
fn install(data: &Path, restoring: &Path) -> std::io::Result<()> {
    let replaced = replaced_dir(data);
    if data.exists() {
        std::fs::rename(data, &replaced)?;
    }
    std::fs::rename(restoring, data)?;
    if replaced.exists() {
        std::fs::remove_dir_all(&replaced)?;
    }
    if let Some(parent) = data.parent().filter(|p| !p.as_os_str().is_empty()) {
        // The renames survive a power loss only once the directory itself is synced.
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// How often the publisher looks whether a snapshot is due.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_swap_is_finished_or_undone() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        // Crash after moving the old directory aside, before moving the new one in: undone.
        std::fs::create_dir_all(replaced_dir(&data)).unwrap();
        std::fs::write(replaced_dir(&data).join("x"), b"old").unwrap();
        std::fs::create_dir_all(restoring_dir(&data)).unwrap();
        recover_dirs(&data).unwrap();
        assert_eq!(std::fs::read(data.join("x")).unwrap(), b"old");
        assert!(!restoring_dir(&data).exists());
        // Crash after moving the new one in, before deleting the old: finished.
        std::fs::create_dir_all(replaced_dir(&data)).unwrap();
        recover_dirs(&data).unwrap();
        assert!(!replaced_dir(&data).exists());
        assert!(data.join("x").exists());
        // A complete restore replaces the directory.
        std::fs::create_dir_all(restoring_dir(&data)).unwrap();
        std::fs::write(restoring_dir(&data).join("y"), b"new").unwrap();
        install(&data, &restoring_dir(&data)).unwrap();
        assert!(data.join("y").exists() && !data.join("x").exists());
        assert_eq!(
            sibling(&data, "restoring"),
            dir.path().join("data.restoring")
        );
    }
}
