//! The sled store's open path on damaged data dirs: a valid data dir is copied, one of
//! its files is overwritten or truncated as the input says, and the store is opened.
//! It must refuse with an error or open and read every record, never panic.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use dht_core::Id;
use dht_core::{Item, Store, StoredItem};
use dht_store_sled::SledStore;
use libfuzzer_sys::fuzz_target;

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, out);
        } else if p.file_name().is_some_and(|n| n != "LOCK") {
            out.push(p);
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// A data dir with 50 items, flushed, made once per process.
fn template() -> &'static (PathBuf, Vec<Id>) {
    static T: OnceLock<(PathBuf, Vec<Id>)> = OnceLock::new();
    T.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("dht-fuzz-sled-template-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut s = SledStore::open(&dir).expect("a fresh dir opens");
        let mut ids = Vec::new();
        for i in 0..50u32 {
            let value = format!("i{i}e").into_bytes();
            let target = Id::sha1(&value);
            s.put_item(StoredItem { target, item: Item::Immutable { value }, expires_at: 1 << 50 }).unwrap();
            ids.push(target);
        }
        s.flush().unwrap();
        drop(s);
        (dir, ids)
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (tpl, ids) = template();
    let work = std::env::temp_dir().join(format!("dht-fuzz-sled-work-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    copy_dir(tpl, &work);
    let mut list = Vec::new();
    files(&work, &mut list);
    let file = &list[data[0] as usize % list.len()];
    let mut bytes = std::fs::read(file).unwrap_or_default();
    let at = (u16::from_le_bytes([data[1], data[2]]) as usize).min(bytes.len());
    if data[3] & 1 == 1 {
        bytes.truncate(at);
    } else {
        let patch = &data[4..];
        let end = (at + patch.len()).min(bytes.len());
        bytes[at..end].copy_from_slice(&patch[..end - at]);
    }
    std::fs::write(file, &bytes).unwrap();
    if let Ok(s) = SledStore::open(&work) {
        for id in ids {
            let _ = s.get_item(id);
        }
        let _ = s.counts();
        let _ = s.load_routing();
    }
});
