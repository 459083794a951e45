//! `vigie client ...`: a small gRPC client for trying a running server from the shell
//! (the README's walk-through uses it; `grpcurl` works too, through reflection).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use super::CliError;
use crate::service::proto::banks_client::BanksClient;
use crate::service::proto::screening_client::ScreeningClient;
use crate::service::proto::{
    AddEntriesRequest, CreateBankRequest, NewEntry, ScreenRequest, new_entry, screen_request,
};

/// `vigie client ...`: calls to a running server.
#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    /// Server address.
    #[arg(
        long,
        env = "VIGIE_ADDR",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    pub addr: String,
    /// API key (`vigie keys create` prints one).
    #[arg(long, env = "VIGIE_KEY", global = true, hide_env_values = true)]
    pub key: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: ClientCommand,
}

/// The client's calls.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create a bank.
    CreateBank {
        /// The bank's name.
        name: String,
        /// block: matches flag an upload; allow: matches cancel block matches of the same picture.
        #[arg(long, default_value = "block")]
        kind: String,
    },
    /// Add an image file to a bank (the server hashes it; the image is not stored).
    AddImage {
        /// The bank's name.
        #[arg(long)]
        bank: String,
        /// The entry's id in the curator's system (unique in its bank).
        #[arg(long)]
        external_id: String,
        /// The entries' label (a category the curator chooses).
        #[arg(long, default_value = "")]
        label: String,
        /// The image file.
        file: PathBuf,
    },
    /// Screen image files against every enabled bank; one JSON line per file.
    Screen {
        /// Image files to screen.
        files: Vec<PathBuf>,
    },
}

fn authorized<T>(message: T, key: &Option<String>) -> Result<Request<T>, CliError> {
    let mut request = Request::new(message);
    if let Some(key) = key {
        let value: MetadataValue<_> = format!("Bearer {key}")
            .parse()
            .map_err(|_| CliError("the key is not a valid header value".into()))?;
        request.metadata_mut().insert("authorization", value);
    }
    Ok(request)
}

fn status_error(e: tonic::Status) -> CliError {
    CliError(format!("{:?}: {}", e.code(), e.message()))
}

/// Runs one client call against the server, printing JSON. Errors: connection, call or file
/// failures.
pub fn run(args: ClientArgs) -> Result<ExitCode, CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let channel = Channel::from_shared(args.addr.clone())
            .map_err(|e| CliError(format!("bad address {}: {e}", args.addr)))?
            .connect()
            .await
            .map_err(|e| CliError(format!("cannot connect to {}: {e}", args.addr)))?;
        match args.command {
            ClientCommand::CreateBank { name, kind } => {
                let bank = BanksClient::new(channel)
                    .create_bank(authorized(CreateBankRequest { name, kind, ..Default::default() }, &args.key)?)
                    .await
                    .map_err(status_error)?
                    .into_inner();
                println!("{}", serde_json::json!({"bank": bank.name, "kind": bank.kind}));
            }
            ClientCommand::AddImage { bank, external_id, label, file } => {
                let image = std::fs::read(&file).map_err(|e| CliError(format!("{}: {e}", file.display())))?;
                let r = BanksClient::new(channel)
                    .add_entries(authorized(
                        AddEntriesRequest {
                            bank,
                            entries: vec![NewEntry {
                                external_id,
                                content: Some(new_entry::Content::Image(image)),
                                label,
                                source: "internal".into(),
                                note: String::new(),
                            }],
                        },
                        &args.key,
                    )?)
                    .await
                    .map_err(status_error)?
                    .into_inner();
                println!("{}", serde_json::json!({"entry_ids": r.entry_ids, "updated": r.updated, "warnings": r.warnings}));
            }
            ClientCommand::Screen { files } => {
                let mut client = ScreeningClient::new(channel);
                for file in files {
                    let image = std::fs::read(&file).map_err(|e| CliError(format!("{}: {e}", file.display())))?;
                    let request = ScreenRequest {
                        request_id: file.display().to_string(),
                        input: Some(screen_request::Input::Image(image)),
                        ..Default::default()
                    };
                    let line = match client.screen(authorized(request, &args.key)?).await {
                        Ok(r) => {
                            let r = r.into_inner();
                            let matches: Vec<_> = r
                                .matches
                                .iter()
                                .map(|m| {
                                    let mut json = serde_json::json!({
                                        "bank": m.bank, "external_id": m.external_id, "label": m.label,
                                        "algorithm": m.algorithm, "distance": m.distance,
                                        "confidence": (m.confidence * 1000.0).round() / 1000.0,
                                        "transform": m.transform, "suppressed": m.suppressed,
                                    });
                                    if let Some(frame) = m.frame {
                                        json["frame"] = frame.into();
                                    }
                                    json
                                })
                                .collect();
                            serde_json::json!({"file": r.request_id, "matched": r.matched, "matches": matches, "notes": r.notes})
                        }
                        Err(e) => serde_json::json!({"file": file.display().to_string(), "error": {"code": format!("{:?}", e.code()), "message": e.message()}}),
                    };
                    println!("{line}");
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
