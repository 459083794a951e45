//! `vigie.v1.Banks` and `vigie.v1.Keys`: bank management and API keys. Each handler checks and
//! converts its request, makes one call to the live banks (`matcher::LiveBanks`: a write is one
//! `Change`, applied to the store, acknowledged once synced, then to the index), and converts the
//! answer.

use std::io::{BufReader, Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::ServiceState;
use super::auth::caller;
use super::convert::*;
use super::error::ServiceError;
use super::proto::banks_server::Banks;
use super::proto::keys_server::Keys;
use super::proto::{self, new_entry};
use super::screening::{Admission, run_bounded};
use crate::store::api_keys::{Role, generate_key, hash_key};
use crate::store::formats::{self, ExportOptions, Format, ImportOptions};
use crate::store::{
    Algorithm, Applied, AuditFilter, BankUpdate, Change, NewBank, NewEntry, Origin, Timestamp,
};

/// Entries in one AddEntries call.
const MAX_ENTRIES_PER_CALL: usize = 10_000;
const EXPORT_CHUNK: usize = 64 * 1024;

/// `vigie.v1.Banks`: banks, entries, imports, exports, stats and the audit log.
pub struct BanksService {
    /// What every handler shares.
    pub state: Arc<ServiceState>,
}

impl BanksService {
    /// Runs a store call off the async runtime (RocksDB writes wait for the synced WAL).
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ServiceState) -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        let state = self.state.clone();
        match tokio::task::spawn_blocking(move || f(&state)).await {
            Ok(r) => r,
            Err(e) if e.is_panic() => {
                Err(ServiceError::Internal("a request handler panicked".into()))
            }
            Err(_) => Err(ServiceError::Internal(
                "a request handler was cancelled".into(),
            )),
        }
    }

    async fn add_entries(
        &self,
        actor: String,
        req: proto::AddEntriesRequest,
    ) -> Result<proto::AddEntriesResponse, ServiceError> {
        if req.entries.len() > MAX_ENTRIES_PER_CALL {
            return Err(ServiceError::invalid(
                "entries",
                "too_many",
                format!("at most {MAX_ENTRIES_PER_CALL} entries per call (use ImportEntries)"),
            ));
        }
        crate::store::validate_bank_name(&req.bank)
            .map_err(|e| ServiceError::invalid("bank", "invalid_bank", e.to_string()))?;
        let mut new_entries = Vec::with_capacity(req.entries.len());
        let mut warnings = Vec::new();
        for (i, e) in req.entries.into_iter().enumerate() {
            let field = format!("entries[{i}]");
            let hashes = match e.content {
                None => {
                    return Err(ServiceError::invalid(
                        format!("{field}.content"),
                        "missing_input",
                        "set image or hashes",
                    ));
                }
                Some(new_entry::Content::Hashes(set)) => {
                    parse_hash_set(&set, &format!("{field}.hashes"))?
                }
                Some(new_entry::Content::Image(bytes)) => {
                    if bytes.len() > self.state.limits.max_image_bytes {
                        return Err(ServiceError::TooLarge(format!(
                            "{field}.image exceeds the size limit"
                        )));
                    }
                    let state = self.state.clone();
                    // A curator's batch waits its turn rather than failing half-way under load.
                    let banked = run_bounded(&self.state, None, Admission::Patient, move || {
                        Ok(state.banks.hash_for_bank(&bytes)?)
                    })
                    .await
                    .map_err(|err| match err {
                        ServiceError::BadImage(d) => ServiceError::invalid(
                            format!("{field}.image"),
                            d.kind.as_str(),
                            d.message,
                        ),
                        other => other,
                    })?;
                    warnings.extend(
                        banked
                            .warnings
                            .iter()
                            .map(|w| format!("{field} ({}): {w}", e.external_id)),
                    );
                    banked.hashes
                }
            };
            if hashes.is_empty() {
                return Err(ServiceError::invalid(
                    format!("{field}.hashes"),
                    "missing_input",
                    "no hash given",
                ));
            }
            new_entries.push(NewEntry {
                external_id: e.external_id,
                hashes,
                label: e.label,
                source: e.source,
                note: e.note,
                added_by: None,
                added_at: None,
                disabled_until: None,
            });
        }
        let change = Change::UpsertEntries {
            bank: req.bank,
            entries: new_entries,
        };
        let upserted = self
            .blocking(
                move |state| match state.writer.write(change, &Origin::now(actor))? {
                    Applied::Upserted(up) => Ok(up),
                    other => Err(unexpected(&other)),
                },
            )
            .await?;
        Ok(proto::AddEntriesResponse {
            entry_ids: upserted.iter().map(|u| u.id).collect(),
            updated: upserted.iter().map(|u| !u.added).collect(),
            warnings,
        })
    }
}

/// A change answered with another kind of outcome than its own: a bug, not the caller's fault.
fn unexpected(applied: &Applied) -> ServiceError {
    ServiceError::Internal(format!("unexpected outcome of a change: {applied:?}"))
}

type ExportStream =
    Pin<Box<dyn Stream<Item = Result<proto::ExportEntriesChunk, Status>> + Send + 'static>>;

/// A `Read` over chunks arriving from an async stream.
struct ChunkReader {
    rx: mpsc::Receiver<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.current.len() {
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    self.current = chunk;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A `Write` that sends fixed-size chunks to the response stream.
struct ChunkWriter {
    tx: mpsc::Sender<Result<proto::ExportEntriesChunk, Status>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::take(&mut self.buf);
        self.tx
            .blocking_send(Ok(proto::ExportEntriesChunk { data }))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= EXPORT_CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

fn parse_format(text: &str) -> Result<Format, ServiceError> {
    text.parse().map_err(|e: formats::FormatError| {
        ServiceError::invalid("format", "invalid_format", e.to_string())
    })
}

fn parse_algorithm(text: &str) -> Result<Option<Algorithm>, ServiceError> {
    if text.is_empty() {
        return Ok(None);
    }
    Algorithm::from_signal_type(text).map(Some).ok_or_else(|| {
        ServiceError::invalid(
            "algorithm",
            "invalid_algorithm",
            format!("unknown algorithm {text:?}"),
        )
    })
}

fn format_error(e: formats::FormatError) -> ServiceError {
    match e {
        formats::FormatError::Store(s) => ServiceError::Store(s),
        other => ServiceError::invalid("data", "invalid_import", other.to_string()),
    }
}

#[tonic::async_trait]
impl Banks for Arc<BanksService> {
    async fn create_bank(
        &self,
        request: Request<proto::CreateBankRequest>,
    ) -> Result<Response<proto::Bank>, Status> {
        let started = Instant::now();
        let result = async {
            let actor = caller(&request)?.actor();
            let r = request.into_inner();
            let new = NewBank {
                name: r.name,
                description: r.description,
                kind: parse_kind(&r.kind, "kind")?,
                enabled: r.enabled,
                max_distance: r.max_distance.as_ref().map(from_proto_distances),
            };
            let change = Change::CreateBank { bank: new };
            self.blocking(
                move |s| match s.writer.write(change, &Origin::now(actor))? {
                    Applied::Bank(bank) => Ok(to_proto_bank(&bank, 0)),
                    other => Err(unexpected(&other)),
                },
            )
            .await
        }
        .await;
        self.state
            .finish("CreateBank", started, result.map(Response::new))
    }

    async fn get_bank(
        &self,
        request: Request<proto::GetBankRequest>,
    ) -> Result<Response<proto::Bank>, Status> {
        let started = Instant::now();
        let name = request.into_inner().name;
        let result = self
            .blocking(move |s| {
                let bank = s
                    .store()
                    .get_bank(&name)?
                    .ok_or_else(|| ServiceError::NotFound(format!("no bank named {name:?}")))?;
                Ok(to_proto_bank(&bank, s.store().count_entries(&name)?))
            })
            .await;
        self.state
            .finish("GetBank", started, result.map(Response::new))
    }

    async fn list_banks(
        &self,
        _request: Request<proto::ListBanksRequest>,
    ) -> Result<Response<proto::ListBanksResponse>, Status> {
        let started = Instant::now();
        let result = self
            .blocking(|s| {
                let mut banks = Vec::new();
                for b in s.store().list_banks()? {
                    let n = s.store().count_entries(&b.name)?;
                    banks.push(to_proto_bank(&b, n));
                }
                Ok(proto::ListBanksResponse { banks })
            })
            .await;
        self.state
            .finish("ListBanks", started, result.map(Response::new))
    }

    async fn update_bank(
        &self,
        request: Request<proto::UpdateBankRequest>,
    ) -> Result<Response<proto::Bank>, Status> {
        let started = Instant::now();
        let result = async {
            let actor = caller(&request)?.actor();
            let r = request.into_inner();
            let update = BankUpdate {
                description: r.description,
                enabled: r.enabled,
                kind: r
                    .kind
                    .as_deref()
                    .map(|k| parse_kind(k, "kind"))
                    .transpose()?,
                max_distance: r.max_distance.as_ref().map(from_proto_distances),
            };
            let change = Change::UpdateBank {
                name: r.name,
                update,
            };
            self.blocking(
                move |s| match s.writer.write(change, &Origin::now(actor))? {
                    Applied::Bank(bank) => {
                        Ok(to_proto_bank(&bank, s.store().count_entries(&bank.name)?))
                    }
                    other => Err(unexpected(&other)),
                },
            )
            .await
        }
        .await;
        self.state
            .finish("UpdateBank", started, result.map(Response::new))
    }

    async fn delete_bank(
        &self,
        request: Request<proto::DeleteBankRequest>,
    ) -> Result<Response<proto::DeleteBankResponse>, Status> {
        let started = Instant::now();
        let result = async {
            let actor = caller(&request)?.actor();
            let name = request.into_inner().name;
            let change = Change::DeleteBank { name };
            self.blocking(
                move |s| match s.writer.write(change, &Origin::now(actor))? {
                    Applied::BankDeleted(removed) => Ok(proto::DeleteBankResponse {
                        entries_removed: removed.len() as u64,
                    }),
                    other => Err(unexpected(&other)),
                },
            )
            .await
        }
        .await;
        self.state
            .finish("DeleteBank", started, result.map(Response::new))
    }

    async fn add_entries(
        &self,
        request: Request<proto::AddEntriesRequest>,
    ) -> Result<Response<proto::AddEntriesResponse>, Status> {
        let started = Instant::now();
        let result = async {
            let actor = caller(&request)?.actor();
            BanksService::add_entries(self, actor, request.into_inner()).await
        }
        .await;
        self.state
            .finish("AddEntries", started, result.map(Response::new))
    }

    async fn remove_entries(
        &self,
        request: Request<proto::RemoveEntriesRequest>,
    ) -> Result<Response<proto::RemoveEntriesResponse>, Status> {
        let started = Instant::now();
        let result = async {
            let actor = caller(&request)?.actor();
            let r = request.into_inner();
            let change = Change::RemoveEntries {
                bank: r.bank,
                ids: r.entry_ids,
                external_ids: r.external_ids,
            };
            self.blocking(
                move |s| match s.writer.write(change, &Origin::now(actor))? {
                    Applied::Removed(removed) => Ok(proto::RemoveEntriesResponse {
                        removed: removed.len() as u64,
                    }),
                    other => Err(unexpected(&other)),
                },
            )
            .await
        }
        .await;
        self.state
            .finish("RemoveEntries", started, result.map(Response::new))
    }

    async fn get_entry(
        &self,
        request: Request<proto::GetEntryRequest>,
    ) -> Result<Response<proto::Entry>, Status> {
        let started = Instant::now();
        let key = request.into_inner().key;
        let result = self
            .blocking(move |s| {
                let entry = match key {
                    None => {
                        return Err(ServiceError::invalid(
                            "key",
                            "missing_input",
                            "set id or external",
                        ));
                    }
                    Some(proto::get_entry_request::Key::Id(id)) => s.store().get_entry(id)?,
                    Some(proto::get_entry_request::Key::External(k)) => {
                        s.store().find_entry(&k.bank, &k.external_id)?
                    }
                };
                entry
                    .map(|e| to_proto_entry(&e))
                    .ok_or_else(|| ServiceError::NotFound("no such entry".into()))
            })
            .await;
        self.state
            .finish("GetEntry", started, result.map(Response::new))
    }

    async fn list_entries(
        &self,
        request: Request<proto::ListEntriesRequest>,
    ) -> Result<Response<proto::ListEntriesResponse>, Status> {
        let started = Instant::now();
        let r = request.into_inner();
        let result = self
            .blocking(move |s| {
                let page_size = match r.page_size {
                    0 => 100,
                    n => n.min(1000) as usize,
                };
                let label = (!r.label.is_empty()).then_some(r.label.as_str());
                let after = (!r.page_token.is_empty()).then_some(r.page_token.as_str());
                // One more than asked tells whether a next page exists.
                let mut entries = s
                    .store()
                    .list_entries(&r.bank, label, after, page_size + 1)?;
                let next_page_token = if entries.len() > page_size {
                    entries.truncate(page_size);
                    entries
                        .last()
                        .map(|e| e.external_id.clone())
                        .unwrap_or_default()
                } else {
                    String::new()
                };
                Ok(proto::ListEntriesResponse {
                    entries: entries.iter().map(to_proto_entry).collect(),
                    next_page_token,
                })
            })
            .await;
        self.state
            .finish("ListEntries", started, result.map(Response::new))
    }

    async fn import_entries(
        &self,
        request: Request<Streaming<proto::ImportEntriesRequest>>,
    ) -> Result<Response<proto::ImportEntriesResponse>, Status> {
        let started = Instant::now();
        let result = async {
            let actor = caller(&request)?.actor();
            let mut inbound = request.into_inner();
            let first = match inbound.next().await {
                Some(Ok(m)) => m,
                Some(Err(status)) => {
                    return Err(ServiceError::invalid(
                        "data",
                        "stream",
                        status.message().to_string(),
                    ));
                }
                None => {
                    return Err(ServiceError::invalid(
                        "bank",
                        "missing_input",
                        "empty import stream",
                    ));
                }
            };
            let mut options = ImportOptions::new(parse_format(&first.format)?);
            options.algorithm = parse_algorithm(&first.algorithm)?;
            options.strict = first.strict;
            let bank = first.bank.clone();
            let (tx, rx) = mpsc::channel::<Vec<u8>>(16);
            let feeder = tokio::spawn(async move {
                if !first.data.is_empty() && tx.send(first.data).await.is_err() {
                    return Ok(());
                }
                while let Some(m) = inbound.next().await {
                    match m {
                        Ok(m) => {
                            if tx.send(m.data).await.is_err() {
                                return Ok(());
                            }
                        }
                        Err(status) => return Err(status),
                    }
                }
                Ok(())
            });
            let summary = self
                .blocking(move |s| {
                    let reader = BufReader::new(ChunkReader {
                        rx,
                        current: Vec::new(),
                        pos: 0,
                    });
                    crate::cluster::import(
                        s.writer.as_ref(),
                        s.store(),
                        &bank,
                        reader,
                        &options,
                        &Origin::now(actor),
                    )
                    .map_err(|e| match e {
                        crate::cluster::ImportError::Format(e) => format_error(e),
                        crate::cluster::ImportError::Write(e) => e.into(),
                    })
                })
                .await?;
            if let Ok(Err(status)) = feeder.await {
                return Err(ServiceError::invalid(
                    "data",
                    "stream",
                    status.message().to_string(),
                ));
            }
            Ok(proto::ImportEntriesResponse {
                added: summary.added,
                updated: summary.updated,
                skipped: summary.skipped,
                failed: summary.failed,
                errors: summary
                    .errors
                    .iter()
                    .map(|e| format!("line {}: {}", e.line, e.reason))
                    .collect(),
                skipped_by_type: summary.skipped_by_type.into_iter().collect(),
            })
        }
        .await;
        self.state
            .finish("ImportEntries", started, result.map(Response::new))
    }

    type ExportEntriesStream = ExportStream;

    async fn export_entries(
        &self,
        request: Request<proto::ExportEntriesRequest>,
    ) -> Result<Response<Self::ExportEntriesStream>, Status> {
        let started = Instant::now();
        let r = request.into_inner();
        let result = async {
            let options = ExportOptions {
                format: parse_format(&r.format)?,
                label: (!r.label.is_empty()).then(|| r.label.clone()),
                algorithm: parse_algorithm(&r.algorithm)?,
            };
            if self.state.store().get_bank(&r.bank)?.is_none() {
                return Err(ServiceError::NotFound(format!(
                    "no bank named {:?}",
                    r.bank
                )));
            }
            let (tx, rx) = mpsc::channel(8);
            let state = self.state.clone();
            tokio::task::spawn_blocking(move || {
                let mut writer = ChunkWriter {
                    tx: tx.clone(),
                    buf: Vec::new(),
                };
                let outcome = formats::export(state.store(), &r.bank, &options, &mut writer)
                    .map_err(format_error)
                    .and_then(|_| {
                        writer
                            .flush()
                            .map_err(|e| ServiceError::Internal(e.to_string()))
                    });
                if let Err(e) = outcome {
                    let _ = tx.blocking_send(Err(Status::from(e)));
                }
            });
            Ok(Box::pin(ReceiverStream::new(rx)) as ExportStream)
        }
        .await;
        self.state
            .finish("ExportEntries", started, result.map(Response::new))
    }

    async fn get_stats(
        &self,
        _request: Request<proto::GetStatsRequest>,
    ) -> Result<Response<proto::Stats>, Status> {
        let started = Instant::now();
        let result = self
            .blocking(|s| {
                let banks = s.store().list_banks()?;
                let mut entries = 0;
                for b in &banks {
                    entries += s.store().count_entries(&b.name)?;
                }
                Ok(proto::Stats {
                    banks: banks.len() as u64,
                    entries,
                    indexed: s
                        .banks
                        .indexes()
                        .counts()
                        .into_iter()
                        .map(|(a, n)| (a.name().to_string(), n))
                        .collect(),
                    uptime_seconds: s.started.elapsed().as_secs_f64(),
                })
            })
            .await;
        self.state
            .finish("GetStats", started, result.map(Response::new))
    }

    async fn list_audit_events(
        &self,
        request: Request<proto::ListAuditEventsRequest>,
    ) -> Result<Response<proto::ListAuditEventsResponse>, Status> {
        let started = Instant::now();
        let r = request.into_inner();
        let result = async {
            let time = |t: &str, field: &str| -> Result<Option<Timestamp>, ServiceError> {
                if t.is_empty() {
                    return Ok(None);
                }
                Timestamp::parse(t)
                    .map(Some)
                    .map_err(|e| ServiceError::invalid(field, "invalid_time", e.to_string()))
            };
            let filter = AuditFilter {
                bank: (!r.bank.is_empty()).then(|| r.bank.clone()),
                since: time(&r.since, "since")?,
                until: time(&r.until, "until")?,
                limit: Some(match r.limit {
                    0 => 1000,
                    n => n.min(10_000) as usize,
                }),
            };
            self.blocking(move |s| {
                let events = s.store().audit_events(&filter)?;
                Ok(proto::ListAuditEventsResponse {
                    events: events
                        .into_iter()
                        .map(|e| proto::AuditEvent {
                            time: e.time.to_string(),
                            actor: e.actor,
                            action: serde_json::to_value(e.action)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_string))
                                .unwrap_or_default(),
                            bank: e.bank,
                            entry_ids: e.entry_ids,
                            detail_json: if e.detail.is_null() {
                                String::new()
                            } else {
                                e.detail.to_string()
                            },
                        })
                        .collect(),
                })
            })
            .await
        }
        .await;
        self.state
            .finish("ListAuditEvents", started, result.map(Response::new))
    }
}

/// `vigie.v1.Keys`: API keys (admin role).
pub struct KeysService {
    /// What every handler shares.
    pub state: Arc<ServiceState>,
}

#[tonic::async_trait]
impl Keys for Arc<KeysService> {
    async fn create_key(
        &self,
        request: Request<proto::CreateKeyRequest>,
    ) -> Result<Response<proto::CreateKeyResponse>, Status> {
        let started = Instant::now();
        let result = async {
            let actor = caller(&request)?.actor();
            let r = request.into_inner();
            let role: Role = r.role.parse().map_err(|_| {
                ServiceError::invalid("role", "invalid_role", "must be screen, curate or admin")
            })?;
            let state = self.state.clone();
            let name = r.name;
            let key = generate_key();
            let stored_key = key.clone();
            let change = Change::CreateKey {
                name,
                role,
                key_sha256: hash_key(&stored_key),
            };
            let applied = tokio::task::spawn_blocking(move || {
                state.writer.write(change, &Origin::now(actor))
            })
            .await
            .map_err(|_| ServiceError::Internal("key creation failed".into()))??;
            let Applied::Key(record) = applied else {
                return Err(unexpected(&applied));
            };
            Ok(proto::CreateKeyResponse {
                key,
                name: record.name,
                role: record.role.name().into(),
            })
        }
        .await;
        self.state
            .finish("CreateKey", started, result.map(Response::new))
    }

    async fn list_keys(
        &self,
        _request: Request<proto::ListKeysRequest>,
    ) -> Result<Response<proto::ListKeysResponse>, Status> {
        let started = Instant::now();
        let result = (|| {
            let keys = self.state.store().list_api_keys()?;
            Ok(proto::ListKeysResponse {
                keys: keys
                    .into_iter()
                    .map(|k| proto::KeyInfo {
                        name: k.name,
                        role: k.role.name().into(),
                        created_at: k.created_at.to_string(),
                        revoked: k.revoked_at.is_some(),
                    })
                    .collect(),
            })
        })();
        self.state
            .finish("ListKeys", started, result.map(Response::new))
    }

    async fn revoke_key(
        &self,
        request: Request<proto::RevokeKeyRequest>,
    ) -> Result<Response<proto::RevokeKeyResponse>, Status> {
        let started = Instant::now();
        let result = async {
            let actor = caller(&request)?.actor();
            let change = Change::RevokeKey {
                name: request.get_ref().name.clone(),
            };
            // Off the async workers: the write waits for a synced store batch, or the cluster.
            let state = self.state.clone();
            tokio::task::spawn_blocking(move || state.writer.write(change, &Origin::now(actor)))
                .await
                .map_err(|_| ServiceError::Internal("key revocation failed".into()))??;
            Ok(proto::RevokeKeyResponse {})
        }
        .await;
        self.state
            .finish("RevokeKey", started, result.map(Response::new))
    }
}
