mod common;
use common::*;
use snapseal_ship::{restore, RestoreOptions, ShipConfig, Shipper};
use std::sync::Arc;
use std::time::Instant;
#[test]
fn timing() {
    let base = std::path::Path::new("/tmp/tt");
    let _ = std::fs::remove_dir_all(base);
    std::fs::create_dir_all(base).unwrap();
    let local = base.join("local");
    let store = store(&local);
    persist(&store, 1, 256 << 20);
    for r in 0..3 {
        let rd = base.join(format!("remote{r}"));
        let remote = local_remote(&rd);
        let sh = Shipper::new(
            Arc::clone(&remote),
            Arc::clone(&store),
            ShipConfig::new("n"),
        )
        .unwrap();
        let t = Instant::now();
        sh.ship_pending().unwrap();
        eprintln!("TIMING ship total {:?}", t.elapsed());
        let td = base.join(format!("target{r}"));
        let into = common::store(&td);
        let t = Instant::now();
        restore(&remote, &into, &RestoreOptions::default()).unwrap();
        eprintln!("TIMING restore total {:?}", t.elapsed());
    }
}
#[test]
fn raw() {
    use object_store::{ObjectStoreExt, PutMultipartOptions, PutPayload, WriteMultipart};
    let base = std::path::Path::new("/tmp/tt2");
    let _ = std::fs::remove_dir_all(base);
    std::fs::create_dir_all(base).unwrap();
    let local = base.join("local");
    let store = store(&local);
    let name = persist(&store, 1, 256 << 20);
    let bytes = bytes::Bytes::from(std::fs::read(local.join(name.file_name())).unwrap());
    for r in 0..3 {
        let remote = local_remote(&base.join(format!("r{r}")));
        let k = object_store::path::Path::from("a");
        let t = Instant::now();
        remote
            .block_on(
                remote
                    .store()
                    .put(&k, PutPayload::from_bytes(bytes.clone())),
            )
            .unwrap();
        eprintln!("TIMING raw put {:?}", t.elapsed());
        let k = object_store::path::Path::from("b");
        let t = Instant::now();
        remote.block_on(async {
            let up = remote
                .store()
                .put_multipart_opts(&k, PutMultipartOptions::default())
                .await
                .unwrap();
            let mut w = WriteMultipart::new_with_chunk_size(up, 8 << 20);
            let mut at = 0;
            while at < bytes.len() {
                let end = (at + (8 << 20)).min(bytes.len());
                w.wait_for_capacity(2).await.unwrap();
                w.put(bytes.slice(at..end));
                at = end;
            }
            w.finish().await.unwrap();
        });
        eprintln!("TIMING raw multipart {:?}", t.elapsed());
    }
}
