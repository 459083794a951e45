//! The protobuf request surface: each request message of `vigie.v1.Screening` and
//! `vigie.v1.Banks`, as the server receives it. The first byte picks the message; the rest is its
//! encoding. It goes through what the server runs on it: the codec's count of repeated fields on
//! the wire (`service::codec::check_caps`), prost's decoding, then the handler itself (validation,
//! conversion into core types, the call into the live banks) with an admin caller, over an
//! in-memory store holding one bank with one entry. No server, socket or RocksDB is involved.
//!
//! Any message must give a response or a typed status other than INTERNAL; a panic is a bug.
//! `ImportEntries` and `ScreenStream` are streams of the messages fuzzed here (`import_formats`
//! covers the import data); the `Keys` service is left out.
//!
//! Shared by the fuzz target (`fuzz/fuzz_targets/proto_requests.rs`) and the regression tests
//! (`tests/fuzz/main.rs`), so that a crash found here is replayed by the same code.
use std::sync::{Arc, OnceLock};

use prost::Message;
use tokio_stream::StreamExt;
use tonic::{Code, Request, Response, Status};
use vigie::hashing::{DEFAULT_DECODE_MIN_SIDE, DecodeLimits, HashingSetup};
use vigie::matcher::LiveBanks;
use vigie::service::auth::Caller;
use vigie::service::banks::BanksService;
use vigie::service::codec::{caps_for, check_caps};
use vigie::service::metrics::Metrics;
use vigie::service::proto::banks_server::Banks;
use vigie::service::proto::screening_server::Screening;
use vigie::service::proto::{self as p};
use vigie::service::screening::ScreeningService;
use vigie::service::{ServiceLimits, ServiceState};
use vigie::store::api_keys::Role;
use vigie::store::{EntryHashes, HashValue, NewBank, NewEntry, Origin, Store};

/// As in `decode_image`: small enough for libFuzzer's memory and time limits.
const LIMITS: DecodeLimits = DecodeLimits {
    max_encoded_bytes: 8 << 20,
    max_pixels: 4_000_000,
    max_decoder_memory: 256 << 20,
};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a tokio runtime")
    })
}

/// A fresh in-memory store with bank `b` holding entry `e1` (a PDQ), behind both services.
fn services() -> (Arc<ScreeningService>, Arc<BanksService>) {
    let store = Arc::new(Store::in_memory());
    let setup = HashingSetup {
        keypoints: true,
        decode_min_side: Some(DEFAULT_DECODE_MIN_SIDE),
        limits: LIMITS,
    };
    let live = Arc::new(LiveBanks::new(store, setup));
    let origin = Origin::now("fuzz");
    let bank = NewBank {
        name: "b".into(),
        ..NewBank::default()
    };
    live.apply(vigie::store::Change::CreateBank { bank }, &origin)
        .expect("create a bank in memory");
    let mut hashes = EntryHashes::default();
    let pdq = HashValue::parse(
        vigie::hashing::Algorithm::Pdq,
        "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22",
    )
    .expect("a PDQ");
    hashes.add(pdq).expect("one hash");
    let entry = NewEntry {
        external_id: "e1".into(),
        hashes,
        ..NewEntry::default()
    };
    live.apply(
        vigie::store::Change::UpsertEntries {
            bank: "b".into(),
            entries: vec![entry],
        },
        &origin,
    )
    .expect("add an entry in memory");
    live.load().expect("load the index");
    let limits = ServiceLimits {
        max_image_bytes: LIMITS.max_encoded_bytes,
        hash_workers: 1,
        ..ServiceLimits::default()
    };
    let state = Arc::new(ServiceState::new(
        live,
        limits,
        Arc::new(Metrics::default()),
    ));
    (
        Arc::new(ScreeningService {
            state: state.clone(),
        }),
        Arc::new(BanksService { state }),
    )
}

/// The codec's cap check, then prost; `None` when either refuses the bytes (a typed status).
fn decode<T: Message + Default + 'static>(body: &[u8]) -> Option<Request<T>> {
    check_caps(body, caps_for::<T>()).ok()?;
    let message = T::decode(body).ok()?;
    let mut request = Request::new(message);
    request.extensions_mut().insert(Caller {
        name: "fuzz".into(),
        role: Role::Admin,
        // No rate limit or probing guard: thousands of requests a second from one caller would
        // otherwise be refused before they reach the handlers the target exists to exercise.
        policy: None,
        unrestricted: true,
    });
    Some(request)
}

fn answered<T>(which: &str, result: Result<Response<T>, Status>) -> Option<T> {
    match result {
        Ok(r) => Some(r.into_inner()),
        Err(status) => {
            assert_ne!(
                status.code(),
                Code::Internal,
                "{which} answered INTERNAL: {}",
                status.message()
            );
            None
        }
    }
}

/// Runs one input; panics on a bug (see the module doc).
pub fn check(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let (screening, banks) = services();
    runtime().block_on(async {
        macro_rules! call {
            ($service:expr, $method:ident, $message:ty) => {
                match decode::<$message>(body) {
                    Some(request) => {
                        answered(stringify!($method), $service.$method(request).await).map(|_| ())
                    }
                    None => None,
                }
            };
        }
        match selector % 12 {
            0 => drop(call!(screening, screen, p::ScreenRequest)),
            1 => drop(call!(screening, hash, p::HashRequest)),
            2 => drop(call!(banks, create_bank, p::CreateBankRequest)),
            3 => drop(call!(banks, get_bank, p::GetBankRequest)),
            4 => drop(call!(banks, update_bank, p::UpdateBankRequest)),
            5 => drop(call!(banks, delete_bank, p::DeleteBankRequest)),
            6 => drop(call!(banks, add_entries, p::AddEntriesRequest)),
            7 => drop(call!(banks, remove_entries, p::RemoveEntriesRequest)),
            8 => drop(call!(banks, get_entry, p::GetEntryRequest)),
            9 => drop(call!(banks, list_entries, p::ListEntriesRequest)),
            10 => drop(call!(banks, list_audit_events, p::ListAuditEventsRequest)),
            _ => {
                if let Some(request) = decode::<p::ExportEntriesRequest>(body)
                    && let Some(mut chunks) =
                        answered("export_entries", banks.export_entries(request).await)
                {
                    while let Some(chunk) = chunks.next().await {
                        answered("export_entries (chunk)", chunk.map(Response::new));
                    }
                }
            }
        }
    });
}
