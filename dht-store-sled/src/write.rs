//! The writes of [`SledStore`], before failures are noted.
//!
//! Under group commit a put writes its record, then its deadline entry, without a
//! transaction: a sled 0.34 transaction writes and syncs a log buffer of its own (it
//! rolls the buffer before and after), one sync per put however puts are grouped,
//! which would undo group commit (announces with a commit every 32: about 77 µs a
//! put with one, under 5 µs without). sled recovers a prefix of its log, so a crash
//! between the two writes leaves a record whose deadline entry is missing or a stale
//! entry beside it; [`SledStore::open`]'s check finds either and rebuilds the index
//! from the records, which hold every deadline. A put that flushes by itself (no
//! group commit), a removal and an expiry sweep take one transaction: a failed write
//! then fails inside it, before the put is counted.

use std::net::SocketAddr;

use dht_core::{Id, StoreError, StoredItem, StoredPeer, UnixMillis};
use sled::Transactional;

use crate::codec::{self, Deadline, KIND_ITEM, KIND_PEER};
use crate::{abort, store_err, tx_err, SledStore, EXPIRE_CHUNK};

impl SledStore {
    pub(crate) fn put_item_unchecked(&mut self, item: StoredItem) -> Result<(), StoreError> {
        let value = codec::encode_item(&item);
        let new_deadline = codec::deadline_key(item.expires_at, KIND_ITEM, &item.target.0);
        let db = self.db()?;
        let replaced = if self.group {
            let old = db
                .items
                .insert(item.target.0, value.as_slice())
                .map_err(store_err)?;
            let old_deadline = match &old {
                Some(old) => Some(codec::deadline_key(
                    codec::item_deadline(old).map_err(store_err)?,
                    KIND_ITEM,
                    &item.target.0,
                )),
                None => None,
            };
            replace_deadline(&db.deadlines, old_deadline, new_deadline)?;
            old.is_some()
        } else {
            (&db.items, &db.deadlines)
                .transaction(|(items, deadlines)| {
                    let old = items.insert(&item.target.0, value.as_slice())?;
                    if let Some(old) = &old {
                        let at = codec::item_deadline(old).map_err(abort)?;
                        deadlines.remove(codec::deadline_key(at, KIND_ITEM, &item.target.0))?;
                    }
                    deadlines.insert(new_deadline.as_slice(), &[])?;
                    Ok(old.is_some())
                })
                .map_err(tx_err)?
        };
        if !replaced {
            self.counts.items += 1;
        }
        Ok(())
    }

    pub(crate) fn put_peer_unchecked(
        &mut self,
        info_hash: &Id,
        peer: StoredPeer,
    ) -> Result<(), StoreError> {
        // Read outside the transaction (sled's cannot scan): the store has one writer,
        // `&mut self`, so nothing changes in between.
        let had_peers = self.has_peers(info_hash)?;
        let key = codec::peer_key(info_hash, &peer.addr);
        let value = codec::encode_peer(peer.expires_at, peer.seed);
        let new_deadline = codec::deadline_key(peer.expires_at, KIND_PEER, &key);
        let db = self.db()?;
        let replaced = if self.group {
            let old = db
                .peers
                .insert(key.as_slice(), value.as_slice())
                .map_err(store_err)?;
            let old_deadline = match &old {
                Some(old) => Some(codec::deadline_key(
                    codec::decode_peer(old).map_err(store_err)?.0,
                    KIND_PEER,
                    &key,
                )),
                None => None,
            };
            replace_deadline(&db.deadlines, old_deadline, new_deadline)?;
            old.is_some()
        } else {
            (&db.peers, &db.deadlines)
                .transaction(|(peers, deadlines)| {
                    let old = peers.insert(key.as_slice(), value.as_slice())?;
                    if let Some(old) = &old {
                        let (at, _) = codec::decode_peer(old).map_err(abort)?;
                        deadlines.remove(codec::deadline_key(at, KIND_PEER, &key))?;
                    }
                    deadlines.insert(new_deadline.as_slice(), &[])?;
                    Ok(old.is_some())
                })
                .map_err(tx_err)?
        };
        if !replaced {
            self.counts.peers += 1;
            if !had_peers {
                self.counts.info_hashes += 1;
            }
        }
        Ok(())
    }

    pub(crate) fn remove_item_unnoted(&mut self, target: &Id) -> Result<bool, StoreError> {
        let db = self.db()?;
        let removed = (&db.items, &db.deadlines)
            .transaction(|(items, deadlines)| {
                let Some(old) = items.remove(&target.0)? else {
                    return Ok(false);
                };
                let at = codec::item_deadline(&old).map_err(abort)?;
                deadlines.remove(codec::deadline_key(at, KIND_ITEM, &target.0))?;
                Ok(true)
            })
            .map_err(tx_err)?;
        if removed {
            self.counts.items = self.counts.items.saturating_sub(1);
        }
        Ok(removed)
    }

    pub(crate) fn remove_peer_unnoted(
        &mut self,
        info_hash: &Id,
        addr: &SocketAddr,
    ) -> Result<bool, StoreError> {
        let key = codec::peer_key(info_hash, addr);
        let db = self.db()?;
        let removed = (&db.peers, &db.deadlines)
            .transaction(|(peers, deadlines)| {
                let Some(old) = peers.remove(key.as_slice())? else {
                    return Ok(false);
                };
                let (at, _) = codec::decode_peer(&old).map_err(abort)?;
                deadlines.remove(codec::deadline_key(at, KIND_PEER, &key))?;
                Ok(true)
            })
            .map_err(tx_err)?;
        if removed {
            self.counts.peers = self.counts.peers.saturating_sub(1);
            if !self.has_peers(info_hash)? {
                self.counts.info_hashes = self.counts.info_hashes.saturating_sub(1);
            }
        }
        Ok(removed)
    }

    /// Removes what is due at `now`, handling at most `options.expire_per_call`
    /// deadlines, in chunks of [`EXPIRE_CHUNK`] per transaction.
    pub(crate) fn expire_unnoted(&mut self, now: UnixMillis) -> Result<(usize, usize), StoreError> {
        let (mut items, mut peers) = (0, 0);
        let mut budget = self.options.expire_per_call;
        loop {
            let db = self.db()?;
            let due = match now.checked_add(1) {
                Some(end) => db.deadlines.range(..end.to_be_bytes()),
                None => db.deadlines.iter(),
            };
            let mut chunk = Vec::new();
            for kv in due.take(EXPIRE_CHUNK.min(budget)) {
                let (k, _) = kv.map_err(store_err)?;
                let (_, what) = codec::decode_deadline_key(&k).map_err(store_err)?;
                chunk.push((k, what));
            }
            if chunk.is_empty() {
                return Ok((items, peers));
            }
            budget -= chunk.len();
            let removed = (&db.items, &db.peers, &db.deadlines)
                .transaction(|(it, pe, dl)| {
                    let mut removed = Vec::with_capacity(chunk.len());
                    for (k, what) in &chunk {
                        dl.remove(k)?;
                        let gone = match what {
                            Deadline::Item(target) => it.remove(&target.0)?.is_some(),
                            Deadline::Peer(_, key) => pe.remove(key.as_slice())?.is_some(),
                        };
                        removed.push(gone);
                    }
                    Ok(removed)
                })
                .map_err(tx_err)?;
            let mut emptied: Vec<Id> = Vec::new();
            for ((_, what), gone) in chunk.iter().zip(removed) {
                if !gone {
                    continue;
                }
                match what {
                    Deadline::Item(_) => {
                        items += 1;
                        self.counts.items = self.counts.items.saturating_sub(1);
                    }
                    Deadline::Peer(ih, _) => {
                        peers += 1;
                        self.counts.peers = self.counts.peers.saturating_sub(1);
                        emptied.push(*ih);
                    }
                }
            }
            emptied.sort();
            emptied.dedup();
            // Each lost a peer in this chunk, so each was counted before it.
            for ih in emptied {
                if !self.has_peers(&ih)? {
                    self.counts.info_hashes = self.counts.info_hashes.saturating_sub(1);
                }
            }
            if budget == 0 {
                return Ok((items, peers));
            }
        }
    }
}

/// Moves a record's deadline entry from `old` (none for a new record) to `new`:
/// the new one first, so that a crash in between leaves an extra entry rather than
/// none (open's check rebuilds the index either way).
fn replace_deadline(
    deadlines: &sled::Tree,
    old: Option<Vec<u8>>,
    new: Vec<u8>,
) -> Result<(), StoreError> {
    if old.as_ref() == Some(&new) {
        return Ok(());
    }
    deadlines.insert(new, &[]).map_err(store_err)?;
    if let Some(old) = old {
        deadlines.remove(old).map_err(store_err)?;
    }
    Ok(())
}
