//! A remote snapshot object's chunk list (docs/FORMAT.md §2.2), read for restore, gc and
//! repair: the stored body of a chunked object, checked against its header's body digest
//! (which the receipt proves, for a reader that checked it) and decoded.

use futures::StreamExt;
use object_store::path::Path;
use snapseal_persist::internals::chunks::decode_list;
use snapseal_persist::internals::format::{Header, HEADER_LEN};
use snapseal_persist::Flags;

use crate::error::ShipError;
use crate::local_file::ChunkList;
use crate::remote::{Remote, READ_IN_FLIGHT, READ_PIECE};

/// The object's header: its first ranged read, decoded (`Refused` when it does not).
pub(crate) async fn read_header(remote: &Remote, key: &Path) -> Result<Header, ShipError> {
    let head = remote.read_range(key, 0..HEADER_LEN as u64).await?;
    Header::decode(&head).map_err(|e| ShipError::Refused {
        object: key.to_string(),
        reason: format!("header: {e}"),
    })
}

/// The chunk list of the object at `key` whose header is `header`, or `None` when it is not
/// chunked. Read in pieces (the header bounds it: a whole number of 36-byte entries, at most
/// 2^22), its BLAKE3 must be the header's body digest, and it must decode and add up to the
/// header's `raw_len`; anything else is `Refused`.
pub(crate) async fn read_list(
    remote: &Remote,
    key: &Path,
    header: &Header,
) -> Result<Option<ChunkList>, ShipError> {
    if !header.flags.contains(Flags::CHUNKED) {
        return Ok(None);
    }
    let refuse = |reason: String| ShipError::Refused {
        object: key.to_string(),
        reason,
    };
    let start = HEADER_LEN as u64;
    let end = start + header.body_len;
    let mut list = Vec::with_capacity(usize::try_from(header.body_len).unwrap_or(0));
    let mut pieces = std::pin::pin!(remote.pieces(key, end, READ_PIECE, READ_IN_FLIGHT));
    let mut at = 0u64;
    while let Some(piece) = pieces.next().await {
        let piece = piece?;
        // The pieces cover 0..end; keep the body's part.
        let from = start.saturating_sub(at).min(piece.len() as u64) as usize;
        list.extend_from_slice(&piece[from..]);
        at += piece.len() as u64;
    }
    if list.len() as u64 != header.body_len {
        return Err(refuse(format!(
            "a chunk list of {} bytes read as {}",
            header.body_len,
            list.len()
        )));
    }
    if *blake3::hash(&list).as_bytes() != header.body_digest {
        return Err(refuse(
            "the chunk list does not match the header's body digest".into(),
        ));
    }
    decode_list(&list, header.raw_len)
        .map(Some)
        .map_err(|e| refuse(format!("chunk list: {e}")))
}
