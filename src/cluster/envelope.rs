//! What one message of the change stream carries: a bank [`Change`] and the [`Origin`] decided
//! where it was accepted, as JSON, so that every replica applies the same change with the same
//! actor and time. The message id (`Nats-Msg-Id`, JetStream's deduplication key) is chosen by the
//! writer, one per write call, and travels in the headers.

use serde::{Deserialize, Serialize};

use crate::store::change::{Change, Origin};

/// Format of [`Envelope`]; a replica refuses (and stops at) a message of a version it does not
/// know rather than apply it wrongly.
pub const ENVELOPE_VERSION: u32 = 1;

/// One change as it travels on the stream.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    /// [`ENVELOPE_VERSION`] of the writer.
    pub v: u32,
    /// The change to apply.
    pub change: Change,
    /// Who made it and when (the writer's clock): every replica records these.
    pub origin: Origin,
}

#[derive(Serialize)]
struct EnvelopeRef<'a> {
    v: u32,
    change: &'a Change,
    origin: &'a Origin,
}

/// The message payload for `change` made by `origin`. Errors: serde's (not expected for the
/// types involved).
pub fn encode(change: &Change, origin: &Origin) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&EnvelopeRef {
        v: ENVELOPE_VERSION,
        change,
        origin,
    })
}

/// The change and origin in a message payload. Errors: a payload that is not an envelope, or one
/// of another version, described for the log.
pub fn decode(payload: &[u8]) -> Result<Envelope, String> {
    let envelope: Envelope =
        serde_json::from_slice(payload).map_err(|e| format!("not a vigie change: {e}"))?;
    if envelope.v != ENVELOPE_VERSION {
        return Err(format!(
            "change format version {} (this vigie reads {ENVELOPE_VERSION}): upgrade this replica",
            envelope.v
        ));
    }
    Ok(envelope)
}
