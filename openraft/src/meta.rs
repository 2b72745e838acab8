//! The metadata record at the start of every snapshot body, and the mapping from openraft log
//! ids to snapseal indices.
//!
//! snapseal's claims digest binds the index, flags, lengths and body digest, and the signed
//! statement adds the term; neither can carry openraft's membership or snapshot id. So the
//! body starts with a record holding the whole `SnapshotMeta`: being part of the body, its
//! bytes are under the body digest, hence under the claims digest the statement signs.
//!
//! ```text
//! magic "SSRAFTM1" (8 bytes) || len (u32 LE, at most MAX_META_LEN) || JSON(SnapshotMeta) (len bytes)
//! ```
//!
//! The user's serialised state follows immediately.

use std::io::{self, Read, Write};

use openraft::{LogId, NodeId, RaftTypeConfig, SnapshotMeta};

use crate::Error;

/// The record's magic bytes.
pub(crate) const META_MAGIC: &[u8; 8] = b"SSRAFTM1";

/// Largest metadata record accepted (the membership of a very large cluster fits easily).
pub(crate) const MAX_META_LEN: u32 = 1 << 20;

/// The snapseal index of a snapshot whose last log id is `last`: the number of log entries it
/// covers (`index + 1`), 0 for a snapshot of nothing. openraft's first entry has index 0, and
/// snapseal needs a position for the empty snapshot too.
pub(crate) fn position<NID: NodeId>(last: Option<&LogId<NID>>) -> Result<u64, Error> {
    match last {
        None => Ok(0),
        Some(l) => match l.index.checked_add(2) {
            // The evidence index (position + 1) must fit as well.
            Some(_) => Ok(l.index + 1),
            None => Err(Error::IndexOverflow(l.index)),
        },
    }
}

/// Writes the record for `meta` to `out`.
pub(crate) fn write_meta<C: RaftTypeConfig>(
    out: &mut dyn Write,
    meta: &SnapshotMeta<C::NodeId, C::Node>,
) -> io::Result<()> {
    let json = serde_json::to_vec(meta).map_err(io::Error::other)?;
    let len = u32::try_from(json.len())
        .ok()
        .filter(|l| *l <= MAX_META_LEN)
        .ok_or_else(|| io::Error::other(format!("metadata record of {} bytes", json.len())))?;
    out.write_all(META_MAGIC)?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(&json)
}

/// Reads the record from the start of a body, leaving `input` at the user's state.
pub(crate) fn read_meta<C: RaftTypeConfig>(
    input: &mut dyn Read,
) -> io::Result<SnapshotMeta<C::NodeId, C::Node>> {
    let mut head = [0u8; 12];
    input.read_exact(&mut head)?;
    if &head[..8] != META_MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "body does not start with the openraft metadata record",
        ));
    }
    let len = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    if len > MAX_META_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("metadata record of {len} bytes, at most {MAX_META_LEN} allowed"),
        ));
    }
    let mut json = vec![0u8; len as usize];
    input.read_exact(&mut json)?;
    serde_json::from_slice(&json).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
