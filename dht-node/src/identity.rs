//! Who the node is across restarts: the OS randomness its secrets come from, the
//! UDP node id kept in a persistent store, and the QUIC node key kept in a file.
//!
//! A node that changes id on every start is a stranger to everyone who knew it:
//! its contacts drop it from their tables and what it stored is looked for
//! elsewhere. Over UDP the id is kept in the data dir of a persistent store
//! (`DhtBuilder::keep_id_in`, feature `sled`);
//! over QUIC the key decides the id, and `load_node_key` keeps the key in
//! `DIR/node.key` (feature `quic`).

use std::io::{self, Read, Write};
use std::path::Path;

use dht_core::Id;

/// The file in a data dir that holds the node's QUIC key (32 bytes, the ed25519 seed).
pub const NODE_KEY_FILE: &str = "node.key";

/// 32 bytes from the operating system: the core's tokens and transaction ids must
/// not be predictable by peers.
pub fn os_seed() -> io::Result<[u8; 32]> {
    use rand_core::RngCore;
    let mut seed = [0u8; 32];
    rand_core::OsRng
        .try_fill_bytes(&mut seed)
        .map_err(|e| io::Error::other(format!("no randomness from the OS: {e}")))?;
    Ok(seed)
}

/// Why the saved node id could not be read or kept.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Reading the store failed.
    #[error("cannot read: {0}")]
    Read(dht_core::StoreError),
    /// Writing the id durably failed.
    #[error("cannot write: {0}")]
    Write(dht_core::StoreError),
    /// The OS gave no randomness for a fresh id.
    #[error("{0}")]
    Seed(io::Error),
}

/// The node id kept in a sled data dir: the one saved there (by an earlier call, or
/// in the routing table a node saved), else a fresh random one. Either way it is
/// written and flushed before this returns, since an id that changed after a crash
/// would make the node a stranger to everyone who knew it. Call it before the node
/// starts and run the node with [`dht_core::IdPolicy::Fixed`] of the result, as
/// [`DhtBuilder::keep_id_in`](crate::DhtBuilder::keep_id_in) does.
#[cfg(feature = "sled")]
pub fn kept_node_id(store: &mut dht_store_sled::SledStore) -> Result<Id, IdentityError> {
    use dht_core::Store;

    let saved = match store.node_id().map_err(IdentityError::Read)? {
        Some(id) => Some(id),
        None => store
            .load_routing()
            .map_err(IdentityError::Read)?
            .and_then(|s| s.node_id),
    };
    let id = match saved {
        Some(id) => id,
        None => fresh_id().map_err(IdentityError::Seed)?,
    };
    store.set_node_id(id).map_err(IdentityError::Write)?;
    Ok(id)
}

/// A random node id from the operating system.
pub fn fresh_id() -> io::Result<Id> {
    let seed = os_seed()?;
    let mut id = [0u8; 20];
    id.copy_from_slice(&seed[..20]);
    Ok(Id(id))
}

/// The QUIC node key kept in `dir/`[`NODE_KEY_FILE`]: loaded if the file exists,
/// else generated and written (owner-only, atomically). `dir` is created if missing.
/// A key file of the wrong size is an error, never replaced: a new key is a new id.
/// Bind the transport with it and start the node with
/// [`DhtBuilder::spawn_quic`](crate::DhtBuilder::spawn_quic).
#[cfg(feature = "quic")]
pub fn load_node_key(dir: &Path) -> io::Result<ed25519_dalek::SigningKey> {
    std::fs::create_dir_all(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display())))?;
    let path = dir.join(NODE_KEY_FILE);
    load_or_generate_key(&path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot load the node key {}: {e}", path.display()),
        )
    })
}

/// The QUIC key in `path` (exactly 32 bytes), or a fresh one written there with
/// [`write_new_secret`] if the file does not exist.
#[cfg(feature = "quic")]
fn load_or_generate_key(path: &Path) -> io::Result<ed25519_dalek::SigningKey> {
    match read_bounded(path, 32) {
        Ok(bytes) => {
            let seed = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a node key file holds 32 bytes, this one {}", bytes.len()),
                )
            })?;
            Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let key = dht_net_quic::generate_key();
            write_new_secret(path, key.as_bytes())?;
            Ok(key)
        }
        Err(e) => Err(e),
    }
}

/// Reads a small file whole, refusing one over `max` bytes without reading more than
/// `max + 1` (a key path of /dev/zero must not exhaust memory).
pub fn read_bounded(path: &Path, max: usize) -> io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(max as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ));
    }
    Ok(bytes)
}

/// Writes a secret to a new file `path`, owner-only (0600 on Unix), durably and
/// atomically, and never over an existing file: the bytes go to a temporary file
/// created exclusively under a name of our own, which is then hard-linked to `path`
/// (an error if `path` exists) and removed. A crash leaves at most the temporary.
pub fn write_new_secret(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let nonce = os_seed()?;
    let name = format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("key"),
        dht_core::to_hex(&nonce[..8])
    );
    let tmp = path.with_file_name(name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::hard_link(&tmp, path)
    })();
    let _ = std::fs::remove_file(&tmp);
    written?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The new name must survive a crash too.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}
