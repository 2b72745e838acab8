//! Moving a chunked snapshot between stores whose chunks travel apart from the file
//! (`internals::chunks`): its verified list and chunks read out of one store; chunks claimed,
//! checked and sealed into another's packs by a `ChunkImport`, which resumes after an
//! interruption and keeps a concurrent sweep off the chunks it relies on; the file ingested
//! once they are there.

use snapseal_persist::fs::SimFs;
use snapseal_persist::internals::chunks::{
    chunk_list, read_chunk, ChunkError, ChunkImport, ChunkImportError,
};
use snapseal_persist::{Hash, Ingested, SnapshotName, SnapshotStore};

use crate::chunked::{edited, open_chunked, persist, read_back, state};
use crate::fixture::*;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A chunk list: `(length, hash)` per chunk.
type List = Vec<(u32, Hash)>;

/// The committed file of `name` in `store`, whole, and its chunk list.
fn parts(store: &SnapshotStore, name: &SnapshotName) -> Result<(Vec<u8>, List)> {
    let file = store.read(name)?;
    let list = chunk_list(&file)?.ok_or("not chunked")?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file.file_reader(), &mut bytes)?;
    Ok((bytes, list))
}

/// Copies `name` from `from` into `to`: the chunks `to` lacks, then the file. Returns how
/// many chunks were copied.
fn copy(from: &SnapshotStore, to: &SnapshotStore, name: &SnapshotName) -> Result<usize> {
    let (file, list) = parts(from, name)?;
    let mut import = ChunkImport::new(to);
    let missing = import.missing(list.iter().map(|(_, h)| h));
    for h in &missing {
        let bytes = read_chunk(from, h)?.ok_or("the source lacks a chunk")?;
        import.add(h, &bytes)?;
    }
    let mut incoming = to.begin_ingest(1 << 30);
    std::io::Write::write_all(&mut incoming, &file)?;
    import.finish_ingest(to, incoming)?;
    Ok(missing.len())
}

#[test]
fn a_chunk_list_and_its_chunks_read_out_of_a_store_rebuild_the_state() -> Result<()> {
    let sim = SimFs::new(40);
    let store = open_chunked(&sim, 5);
    let s = state(1 << 20, 40);
    let c = persist(&store, 10, &s)?;
    let (_, list) = parts(&store, &c.name)?;
    assert!(list.len() > 4, "a MiB is several chunks");
    let mut rebuilt = Vec::new();
    for (len, h) in &list {
        let bytes = read_chunk(&store, h)?.ok_or("a listed chunk is missing")?;
        assert_eq!(bytes.len(), *len as usize);
        rebuilt.extend_from_slice(&bytes);
    }
    assert_eq!(rebuilt, s);
    assert!(read_chunk(&store, &[9; 32])?.is_none());
    Ok(())
}

#[test]
fn a_damaged_chunk_is_an_error_naming_its_pack_never_its_bytes() -> Result<()> {
    let sim = SimFs::new(41);
    let store = open_chunked(&sim, 5);
    let c = persist(&store, 10, &state(1 << 20, 41))?;
    let (_, list) = parts(&store, &c.name)?;
    let pack = sim
        .names(dir())
        .into_iter()
        .find(|n| n.ends_with(".pack"))
        .ok_or("no pack")?;
    assert!(sim.flip_bit(dir(), &pack, 8 * 8)); // the first chunk's first byte
    let got = read_chunk(&store, &list[0].1);
    assert!(
        matches!(&got, Err(ChunkError::Damaged { hash, pack: p }) if *hash == list[0].1 && p.ends_with(&pack)),
        "{got:?}"
    );
    Ok(())
}

#[test]
fn an_import_into_an_empty_store_commits_a_snapshot_that_reads_back() -> Result<()> {
    let (a, b) = (SimFs::new(42), SimFs::new(43));
    let (from, to) = (open_chunked(&a, 5), open_chunked(&b, 5));
    let s = state(1 << 20, 42);
    let c = persist(&from, 10, &s)?;
    let copied = copy(&from, &to, &c.name)?;
    assert_eq!(copied, parts(&from, &c.name)?.1.len());
    assert_eq!(to.latest()?.map(|f| *f.name()), Some(c.name));
    assert_eq!(read_back(&to, &c.name)?, s);
    Ok(())
}

#[test]
fn a_store_holding_an_older_snapshot_is_asked_only_for_the_changed_chunks() -> Result<()> {
    let (a, b) = (SimFs::new(44), SimFs::new(45));
    let (from, to) = (open_chunked(&a, 5), open_chunked(&b, 5));
    let old = state(2 << 20, 44);
    let new = edited(&old, 1 << 20, 100);
    let c1 = persist(&from, 10, &old)?;
    let c2 = persist(&from, 20, &new)?;
    copy(&from, &to, &c1.name)?;
    let copied = copy(&from, &to, &c2.name)?;
    assert!(
        (1..=3).contains(&copied),
        "{copied} chunks for a 100-byte edit"
    );
    assert_eq!(read_back(&to, &c2.name)?, new);
    Ok(())
}

#[test]
fn bytes_that_do_not_hash_to_the_chunk_name_are_refused_and_not_stored() -> Result<()> {
    let b = SimFs::new(46);
    let to = open_chunked(&b, 5);
    let mut import = ChunkImport::new(&to);
    let name = *blake3::hash(b"the chunk").as_bytes();
    let got = import.add(&name, b"another chunk");
    assert!(
        matches!(got, Err(ChunkError::Mismatch { hash, .. }) if hash == name),
        "{got:?}"
    );
    assert!(matches!(
        import.add(&name, b""),
        Err(ChunkError::Length { .. })
    ));
    import.seal()?;
    assert!(!b.names(dir()).iter().any(|n| n.starts_with("chunks_")));
    Ok(())
}

#[test]
fn an_interrupted_import_resumes_without_the_chunks_it_sealed() -> Result<()> {
    let (a, b) = (SimFs::new(47), SimFs::new(48));
    let (from, to) = (open_chunked(&a, 5), open_chunked(&b, 5));
    let s = state(1 << 20, 47);
    let c = persist(&from, 10, &s)?;
    let (file, list) = parts(&from, &c.name)?;
    let hashes: Vec<Hash> = list.iter().map(|(_, h)| *h).collect();
    let half = hashes.len() / 2;
    {
        let mut import = ChunkImport::new(&to);
        let missing = import.missing(&hashes);
        for h in &missing[..half] {
            import.add(h, &read_chunk(&from, h)?.ok_or("chunk")?)?;
        }
        import.seal()?;
        // One more added but never sealed: lost with the import.
        let h = &missing[half];
        import.add(h, &read_chunk(&from, h)?.ok_or("chunk")?)?;
    }
    let mut import = ChunkImport::new(&to);
    let missing = import.missing(&hashes);
    assert_eq!(missing, hashes[half..].to_vec());
    for h in &missing {
        import.add(h, &read_chunk(&from, h)?.ok_or("chunk")?)?;
    }
    let mut incoming = to.begin_ingest(1 << 30);
    std::io::Write::write_all(&mut incoming, &file)?;
    assert!(matches!(
        import.finish_ingest(&to, incoming)?,
        Ingested::Committed(_)
    ));
    assert_eq!(read_back(&to, &c.name)?, s);
    Ok(())
}

#[test]
fn an_import_missing_a_chunk_fails_naming_it_and_commits_nothing() -> Result<()> {
    let (a, b) = (SimFs::new(49), SimFs::new(50));
    let (from, to) = (open_chunked(&a, 5), open_chunked(&b, 5));
    let c = persist(&from, 10, &state(1 << 20, 49))?;
    let (file, list) = parts(&from, &c.name)?;
    let mut import = ChunkImport::new(&to);
    let missing = import.missing(list.iter().map(|(_, h)| h));
    for h in &missing[..missing.len() - 1] {
        import.add(h, &read_chunk(&from, h)?.ok_or("chunk")?)?;
    }
    let mut incoming = to.begin_ingest(1 << 30);
    std::io::Write::write_all(&mut incoming, &file)?;
    let got = import.finish_ingest(&to, incoming);
    let last = missing[missing.len() - 1];
    let message = match got {
        Err(ChunkImportError::Ingest(e)) => snapseal_persist::ErrorChain(&e).to_string(),
        other => return Err(format!("expected a refused ingest, got {other:?}").into()),
    };
    assert!(message.contains(&hex(&last)), "{message}");
    assert!(to.list()?.is_empty());
    assert!(to.list_pending()?.is_empty());
    Ok(())
}

#[test]
fn chunks_an_import_found_stored_survive_a_sweep_until_its_snapshot_commits() -> Result<()> {
    let (a, b) = (SimFs::new(51), SimFs::new(52));
    let (from, to) = (open_chunked(&a, 5), open_chunked(&b, 2));
    let old = state(1 << 20, 51);
    let new = edited(&old, 1000, 10);
    let c1 = persist(&from, 10, &old)?;
    let c2 = persist(&from, 50, &new)?;
    copy(&from, &to, &c1.name)?;
    let (file, list) = parts(&from, &c2.name)?;
    let mut import = ChunkImport::new(&to);
    let missing = import.missing(list.iter().map(|(_, h)| h));
    assert!(missing.len() < list.len() / 2, "most chunks are shared");
    // Two unrelated snapshots push the old one out of `to` (keep_last 2); the sweep after
    // them finds its chunks named by no retained snapshot, but claimed.
    persist(&to, 30, &state(1 << 20, 53))?;
    persist(&to, 40, &state(1 << 20, 54))?;
    assert!(
        !to.list()?.iter().any(|e| e.name.idx == 10),
        "the old one is gone"
    );
    for h in &missing {
        import.add(h, &read_chunk(&from, h)?.ok_or("chunk")?)?;
    }
    let mut incoming = to.begin_ingest(1 << 30);
    std::io::Write::write_all(&mut incoming, &file)?;
    import.finish_ingest(&to, incoming)?;
    assert_eq!(read_back(&to, &c2.name)?, new);
    Ok(())
}

/// The name of the only chunk pack in `sim`'s store directory.
fn only_pack(sim: &SimFs) -> Result<String> {
    let packs: Vec<String> = sim
        .names(dir())
        .into_iter()
        .filter(|n| n.ends_with(".pack"))
        .collect();
    match packs.as_slice() {
        [one] => Ok(one.clone()),
        other => Err(format!("expected one pack, found {other:?}").into()),
    }
}

#[test]
fn chunks_an_import_hashed_are_not_read_back_by_its_ingest_but_every_later_read_checks_them(
) -> Result<()> {
    let (a, b) = (SimFs::new(55), SimFs::new(56));
    let (from, to) = (open_chunked(&a, 5), open_chunked(&b, 5));
    let c = persist(&from, 10, &state(1 << 20, 55))?;
    let (file, list) = parts(&from, &c.name)?;
    let mut import = ChunkImport::new(&to);
    for h in import.missing(list.iter().map(|(_, h)| h)) {
        import.add(&h, &read_chunk(&from, &h)?.ok_or("chunk")?)?;
    }
    import.seal()?;
    // The disk loses a bit of the first chunk after it was hashed and made durable.
    assert!(b.flip_bit(dir(), &only_pack(&b)?, 8 * 8));
    let mut incoming = to.begin_ingest(1 << 30);
    std::io::Write::write_all(&mut incoming, &file)?;
    // The ingest checks the import's own chunks by their presence: it commits.
    assert!(matches!(
        import.finish_ingest(&to, incoming)?,
        Ingested::Committed(_)
    ));
    // Every read still hashes what it reads: the damage is found there.
    assert!(matches!(
        read_chunk(&to, &list[0].1),
        Err(ChunkError::Damaged { .. })
    ));
    assert!(read_back(&to, &c.name).is_err());
    assert!(to.latest()?.is_none(), "the only snapshot does not verify");
    Ok(())
}

#[test]
fn a_chunk_the_store_had_is_read_and_checked_by_an_import_ingest() -> Result<()> {
    let (a, b) = (SimFs::new(57), SimFs::new(58));
    let (from, to) = (open_chunked(&a, 5), open_chunked(&b, 5));
    let old = state(1 << 20, 57);
    let c1 = persist(&from, 10, &old)?;
    let c2 = persist(&from, 20, &edited(&old, 1 << 19, 10))?;
    copy(&from, &to, &c1.name)?;
    // The first chunk, which both snapshots name, is damaged in `to`'s pack.
    assert!(b.flip_bit(dir(), &only_pack(&b)?, 8 * 8));
    let (file, list) = parts(&from, &c2.name)?;
    let mut import = ChunkImport::new(&to);
    let missing = import.missing(list.iter().map(|(_, h)| h));
    assert!(
        !missing.contains(&list[0].1),
        "the store has the first chunk"
    );
    for h in &missing {
        import.add(h, &read_chunk(&from, h)?.ok_or("chunk")?)?;
    }
    let mut incoming = to.begin_ingest(1 << 30);
    std::io::Write::write_all(&mut incoming, &file)?;
    let message = match import.finish_ingest(&to, incoming) {
        Err(ChunkImportError::Ingest(e)) => snapseal_persist::ErrorChain(&e).to_string(),
        other => return Err(format!("expected a refused ingest, got {other:?}").into()),
    };
    assert!(message.contains(&hex(&list[0].1)), "{message}");
    assert!(!to.list()?.iter().any(|e| e.name == c2.name));
    Ok(())
}

fn hex(h: &Hash) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_chunked_file_verifies_down_to_its_list_without_its_chunks_and_a_changed_list_does_not(
) -> Result<()> {
    use snapseal_persist::fs::RealFs;
    use snapseal_persist::internals::chunks::verify_file_but_chunks;
    use snapseal_persist::internals::fs::{Expect, Untrusted};
    let dir = tempfile::tempdir()?;
    let mut o = opts();
    o.chunked = true;
    let store = std::sync::Arc::new(SnapshotStore::open(
        std::sync::Arc::new(RealFs),
        dir.path(),
        o,
    )?);
    let c = persist(&store, 10, &state(1 << 20, 60))?;
    let verifier = std::sync::Arc::clone(&store.options().verifier);
    drop(store);
    // No pack left: the chunks cannot be read, and are not.
    for entry in std::fs::read_dir(dir.path())? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "pack") {
            std::fs::remove_file(path)?;
        }
    }
    let path = dir.path().join(c.name.file_name());
    let open = || Untrusted::open_path(&path, Expect::new("snapshot file", 1 << 30));
    let mut seen = 0u64;
    let verified = verify_file_but_chunks(&open()?, Some(&c.name), &*verifier, &mut |p| {
        seen += p.len() as u64
    })?;
    assert_eq!(verified.header.idx, 10);
    assert_eq!(
        seen,
        std::fs::metadata(&path)?.len(),
        "every byte passed through `each`"
    );
    // One byte of the list changed: the body digest no longer matches.
    let mut bytes = std::fs::read(&path)?;
    bytes[160] ^= 1;
    std::fs::write(&path, bytes)?;
    assert!(verify_file_but_chunks(&open()?, Some(&c.name), &*verifier, &mut |_| {}).is_err());
    Ok(())
}
