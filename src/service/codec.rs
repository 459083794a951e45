//! The gRPC codec of every vigie service: prost's, except that the repeated fields of a request
//! are counted on the wire, before anything is decoded, and a request over a cap is refused
//! (INVALID_ARGUMENT, kind `too_many`) without decoding it.
//!
//! Why on the wire: prost allocates an element per repeated item as it decodes, so a 28 MB
//! `Screen` of one-byte bank names became about nine million `String`s (1.2 GB resident) before
//! any handler could count them. Counting walks the bytes once without allocating (the protobuf
//! wire format: a varint key `field << 3 | wire type`, then a varint, 8 or 4 fixed bytes, or a
//! varint length and that many bytes; see <https://protobuf.dev/programming-guides/encoding/>).
//! With every repeated field capped, a decoded request holds its own bytes once plus at most
//! `cap x size_of(element)` of structure: for the largest cap, 10,000 `NewEntry` values of under
//! 200 bytes each, 2 MB.

use std::any::TypeId;
use std::marker::PhantomData;

use prost::Message;
use prost::bytes::Buf;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstDecoder, ProstEncoder};

use super::error::ServiceError;
use super::proto;

/// Most bank names one `Screen` (or `ScreenStream` item) may list.
pub const MAX_BANKS_PER_SCREEN: usize = 1024;
/// Most entries one `AddEntries` may carry (more: `ImportEntries`).
pub const MAX_ENTRIES_PER_CALL: usize = 10_000;
/// Most ids (entry ids, and external ids, each) one `RemoveEntries` may name.
pub const MAX_IDS_PER_REMOVAL: usize = 10_000;
/// Most algorithm names one `Hash` may ask for (there are five).
pub const MAX_ALGORITHMS_PER_HASH: usize = 16;

/// One capped repeated field of a request message.
#[derive(Debug, Clone, Copy)]
pub struct Cap {
    /// The field's number in the `.proto`.
    pub field: u32,
    /// Its name, for the error.
    pub name: &'static str,
    /// Most elements accepted.
    pub max: usize,
    /// A packed scalar field (`repeated uint64`): one length-delimited record holding varints.
    pub packed: bool,
}

const fn cap(field: u32, name: &'static str, max: usize) -> Cap {
    Cap {
        field,
        name,
        max,
        packed: false,
    }
}

/// The caps of message type `U` (none for messages without repeated request fields): what the
/// decoder passes to [`check_caps`] (public for the fuzz targets, which run the same check).
pub fn caps_for<U: 'static>() -> &'static [Cap] {
    const SCREEN: &[Cap] = &[cap(4, "banks", MAX_BANKS_PER_SCREEN)];
    const HASH: &[Cap] = &[cap(2, "algorithms", MAX_ALGORITHMS_PER_HASH)];
    const ADD: &[Cap] = &[cap(2, "entries", MAX_ENTRIES_PER_CALL)];
    const REMOVE: &[Cap] = &[
        Cap {
            field: 2,
            name: "entry_ids",
            max: MAX_IDS_PER_REMOVAL,
            packed: true,
        },
        cap(3, "external_ids", MAX_IDS_PER_REMOVAL),
    ];
    let t = TypeId::of::<U>();
    if t == TypeId::of::<proto::ScreenRequest>() {
        SCREEN
    } else if t == TypeId::of::<proto::HashRequest>() {
        HASH
    } else if t == TypeId::of::<proto::AddEntriesRequest>() {
        ADD
    } else if t == TypeId::of::<proto::RemoveEntriesRequest>() {
        REMOVE
    } else {
        &[]
    }
}

/// Reads a varint; `None` when the bytes end inside it or it runs past 10 bytes.
fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..10 {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn skip(bytes: &mut &[u8], n: u64) -> Option<()> {
    let n = usize::try_from(n).ok()?;
    *bytes = bytes.get(n..)?;
    Some(())
}

/// Counts the capped fields of one encoded message and refuses it at the first cap exceeded.
/// Malformed bytes are left for prost to refuse with its own error: counting stops there.
pub fn check_caps(mut bytes: &[u8], caps: &[Cap]) -> Result<(), ServiceError> {
    let mut counts = [0usize; 4];
    while !bytes.is_empty() {
        let Some(key) = varint(&mut bytes) else {
            return Ok(());
        };
        let field = key >> 3;
        let mut payload: &[u8] = &[];
        let ok = match key & 7 {
            0 => varint(&mut bytes).map(|_| ()),
            1 => skip(&mut bytes, 8),
            2 => varint(&mut bytes).and_then(|len| {
                let len = usize::try_from(len).ok()?;
                payload = bytes.get(..len)?;
                bytes = bytes.get(len..)?;
                Some(())
            }),
            5 => skip(&mut bytes, 4),
            _ => None,
        };
        if ok.is_none() {
            return Ok(());
        }
        for (i, c) in caps.iter().enumerate().take(counts.len()) {
            if u64::from(c.field) != field {
                continue;
            }
            counts[i] += if c.packed && key & 7 == 2 {
                // Each varint ends with a byte whose high bit is clear.
                payload.iter().filter(|b| *b & 0x80 == 0).count()
            } else {
                1
            };
            if counts[i] > c.max {
                return Err(ServiceError::invalid(
                    c.name,
                    "too_many",
                    format!("at most {} {} per request", c.max, c.name),
                ));
            }
        }
    }
    Ok(())
}

/// The codec named in `build.rs` for every generated service and client: prost's encoder, and
/// prost's decoder behind [`check_caps`].
#[derive(Debug, Clone)]
pub struct CappedCodec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for CappedCodec<T, U> {
    fn default() -> Self {
        CappedCodec { _pd: PhantomData }
    }
}

impl<T, U> Codec for CappedCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = CappedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        CappedDecoder {
            inner: ProstDecoder::new(BufferSettings::default()),
        }
    }
}

/// Prost's decoder behind the caps of [`caps_for`].
#[derive(Debug, Clone)]
pub struct CappedDecoder<U> {
    inner: ProstDecoder<U>,
}

impl<U: Message + Default + 'static> Decoder for CappedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        let caps = caps_for::<U>();
        // A received message sits in one contiguous buffer; were it ever split, the caps are
        // checked on a copy rather than skipped.
        if !caps.is_empty() {
            if buf.chunk().len() == buf.remaining() {
                check_caps(buf.chunk(), caps)?;
            } else {
                let copy = buf.copy_to_bytes(buf.remaining());
                check_caps(&copy, caps)?;
                return U::decode(copy)
                    .map(Some)
                    .map_err(|e| Status::internal(e.to_string()));
            }
        }
        self.inner.decode(buf)
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.inner.buffer_settings()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_fields_over_their_cap_are_refused_before_decoding() {
        let ok = proto::ScreenRequest {
            banks: vec!["b".into(); MAX_BANKS_PER_SCREEN],
            ..Default::default()
        }
        .encode_to_vec();
        assert!(check_caps(&ok, caps_for::<proto::ScreenRequest>()).is_ok());
        let over = proto::ScreenRequest {
            banks: vec!["b".into(); MAX_BANKS_PER_SCREEN + 1],
            ..Default::default()
        }
        .encode_to_vec();
        let e = check_caps(&over, caps_for::<proto::ScreenRequest>()).unwrap_err();
        assert_eq!(e.kind(), "too_many");
        assert!(e.to_string().contains("banks"), "{e}");
    }

    #[test]
    fn packed_ids_are_counted_one_by_one() {
        let at = proto::RemoveEntriesRequest {
            bank: "b".into(),
            entry_ids: (0..MAX_IDS_PER_REMOVAL as u64).map(|i| i << 40).collect(),
            ..Default::default()
        }
        .encode_to_vec();
        assert!(check_caps(&at, caps_for::<proto::RemoveEntriesRequest>()).is_ok());
        let over = proto::RemoveEntriesRequest {
            bank: "b".into(),
            entry_ids: (0..=MAX_IDS_PER_REMOVAL as u64).collect(),
            ..Default::default()
        }
        .encode_to_vec();
        assert!(check_caps(&over, caps_for::<proto::RemoveEntriesRequest>()).is_err());
    }

    #[test]
    fn malformed_bytes_are_left_to_prost() {
        assert!(check_caps(&[0xff, 0xff], caps_for::<proto::ScreenRequest>()).is_ok());
        assert!(check_caps(&[0x22, 0x7f, 0x01], caps_for::<proto::ScreenRequest>()).is_ok());
        assert!(caps_for::<proto::Bank>().is_empty());
    }
}
