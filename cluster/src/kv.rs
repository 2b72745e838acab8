//! The service's state and commands: a sorted string map, put and compare-and-set, and the
//! one byte encoding used both as the snapshot body and under the `/state` digest.

use std::collections::BTreeMap;
use std::io::{self, BufReader, BufWriter, Read, Write};

use openraft::LogId;
use serde::{Deserialize, Serialize};
use snapseal_openraft::{SealedData, SealedState};

/// Node ids are numbers.
pub(crate) type NodeId = u64;

/// A write, as it travels through the Raft log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Cmd {
    /// Set `key` to `value`.
    Put { key: String, value: String },
    /// Set `key` to `to` if its value is `from` (`None`: absent).
    Cas {
        key: String,
        from: Option<String>,
        to: String,
    },
}

/// What applying a [`Cmd`] answers: whether it took effect, and the value before it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Applied {
    /// A put always; a cas iff the value before equalled its `from`.
    pub(crate) ok: bool,
    /// The key's value before the command.
    pub(crate) before: Option<String>,
}

openraft::declare_raft_types!(
    /// The service's Raft types: commands in, [`Applied`] out, snapseal files as snapshots.
    pub(crate) Cfg: D = Cmd, R = Applied, SnapshotData = SealedData,
);

/// Longest key or value a snapshot body may hold (the body verified, so this only bounds
/// memory against a bug, not against an attacker).
const MAX_FIELD: u64 = 64 << 20;

/// The state: a sorted map.
///
/// Encoding (the snapshot body, and the input of the `/state` digest): for each entry in key
/// order, `u64 LE byte length of the key, the key's UTF-8 bytes, u64 LE byte length of the
/// value, the value's UTF-8 bytes`; nothing else (the empty map is zero bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Kv(pub(crate) BTreeMap<String, String>);

impl Kv {
    /// Applies one command.
    pub(crate) fn run(&mut self, cmd: &Cmd) -> Applied {
        match cmd {
            Cmd::Put { key, value } => Applied {
                ok: true,
                before: self.0.insert(key.clone(), value.clone()),
            },
            Cmd::Cas { key, from, to } => {
                let before = self.0.get(key).cloned();
                let ok = before == *from;
                if ok {
                    self.0.insert(key.clone(), to.clone());
                }
                Applied { ok, before }
            }
        }
    }

    /// Writes the encoding described on [`Kv`].
    pub(crate) fn encode(&self, out: &mut dyn Write) -> io::Result<()> {
        for (k, v) in &self.0 {
            for field in [k, v] {
                out.write_all(&(field.len() as u64).to_le_bytes())?;
                out.write_all(field.as_bytes())?;
            }
        }
        Ok(())
    }

    /// The hex BLAKE3 of the encoding.
    pub(crate) fn digest(&self) -> String {
        let mut hasher = blake3::Hasher::new();
        // Writing into a hasher cannot fail.
        let _ = self.encode(&mut hasher);
        hasher.finalize().to_hex().to_string()
    }
}

/// Reads one length-prefixed field; `None` at a clean end of input before it.
fn read_field(input: &mut dyn Read) -> io::Result<Option<String>> {
    let mut len = [0u8; 8];
    let mut got = 0;
    while got < len.len() {
        match input.read(&mut len[got..])? {
            0 if got == 0 => return Ok(None),
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => got += n,
        }
    }
    let len = u64::from_le_bytes(len);
    if len > MAX_FIELD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a field of {len} bytes (at most {MAX_FIELD})"),
        ));
    }
    let mut bytes = Vec::new();
    input.take(len).read_to_end(&mut bytes)?;
    if bytes.len() as u64 != len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

impl SealedState<Cfg> for Kv {
    fn apply(&mut self, _: &LogId<NodeId>, cmd: &Cmd) -> Applied {
        self.run(cmd)
    }

    fn no_data_response(&self, _: &LogId<NodeId>) -> Applied {
        Applied::default()
    }

    fn serialise(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut out = BufWriter::with_capacity(1 << 16, out);
        self.encode(&mut out)?;
        out.flush()
    }

    fn restore(input: &mut dyn Read) -> io::Result<Self> {
        let mut input = BufReader::with_capacity(1 << 16, input);
        let mut map = BTreeMap::new();
        while let Some(key) = read_field(&mut input)? {
            let value = read_field(&mut input)?.ok_or(io::ErrorKind::UnexpectedEof)?;
            map.insert(key, value);
        }
        Ok(Kv(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_restores_from_its_encoding_and_the_digest_follows_the_contents() {
        let mut kv = Kv::default();
        assert!(
            kv.run(&Cmd::Put {
                key: "a".into(),
                value: "1".into()
            })
            .ok
        );
        let cas = kv.run(&Cmd::Cas {
            key: "a".into(),
            from: Some("0".into()),
            to: "2".into(),
        });
        assert_eq!(
            cas,
            Applied {
                ok: false,
                before: Some("1".into())
            }
        );
        let cas = kv.run(&Cmd::Cas {
            key: "b".into(),
            from: None,
            to: "x".into(),
        });
        assert_eq!(
            cas,
            Applied {
                ok: true,
                before: None
            }
        );
        let mut bytes = Vec::new();
        kv.serialise(&mut bytes).unwrap();
        let back = Kv::restore(&mut &bytes[..]).unwrap();
        assert_eq!(back, kv);
        assert_eq!(back.digest(), kv.digest());
        assert_ne!(Kv::default().digest(), kv.digest());
        assert!(
            Kv::restore(&mut &bytes[..bytes.len() - 1]).is_err(),
            "a cut body is refused"
        );
    }
}
