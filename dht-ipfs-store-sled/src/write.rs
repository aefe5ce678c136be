//! The writes of [`SledStore`], before failures are noted: the bounds checked as
//! `dht_ipfs::MemStore` checks them, then one sled transaction per operation (an entry
//! with its deadline; an `add_provider` with the expired providers it drops), and the
//! counts and shares updated only once the transaction committed.

use dht_ipfs::{StoreError, StoredProvider, StoredRecord, UnixMillis};
use sled::Transactional;

use crate::codec::{self, KIND_PROVIDER, KIND_RECORD};
use crate::{abort, store_err, tx_err, SledStore, EXPIRE_CHUNK};

/// A stored provider of the key being added to, as `add_provider` reads them.
struct Listed {
    tree_key: Vec<u8>,
    provider: StoredProvider,
    source: Option<Vec<u8>>,
}

/// What an `add_provider` writes besides dropping expired providers.
struct Upsert {
    tree_key: Vec<u8>,
    value: Vec<u8>,
    old_deadline: Option<Vec<u8>>,
    new_deadline: Vec<u8>,
}

impl SledStore {
    pub(crate) fn put_record_unnoted(
        &mut self,
        record: StoredRecord,
        source: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        // Read outside the transaction: the store has one writer (`&mut self`), so
        // nothing changes in between.
        let old = match self.db()?.records.get(&record.key).map_err(store_err)? {
            None => None,
            Some(b) => Some(codec::deadline_and_source(KIND_RECORD, &b).map_err(store_err)?),
        };
        let same_source = old.as_ref().is_some_and(|(_, s)| s.as_deref() == source);
        if old.is_none() && self.counts.records >= self.limits.max_records {
            return Err(StoreError::Full);
        }
        if source.is_some()
            && !same_source
            && self.share_of(source).records >= self.limits.records_per_source
        {
            return Err(StoreError::SourceShare);
        }
        let value = codec::encode_record(&record, source);
        let old_deadline = old
            .as_ref()
            .map(|(at, _)| codec::deadline_key(*at, KIND_RECORD, &record.key));
        let new_deadline = codec::deadline_key(record.expires_at, KIND_RECORD, &record.key);
        let db = self.db()?;
        (&db.records, &db.deadlines)
            .transaction(|(records, deadlines)| {
                records.insert(record.key.as_slice(), value.as_slice())?;
                if let Some(d) = &old_deadline {
                    deadlines.remove(d.as_slice())?;
                }
                deadlines.insert(new_deadline.as_slice(), &[])?;
                Ok(())
            })
            .map_err(tx_err)?;
        match old {
            Some((_, old_source)) => self.release(old_source.as_deref(), true),
            None => self.counts.records += 1,
        }
        self.charge(source, true);
        Ok(())
    }

    pub(crate) fn remove_record_unnoted(&mut self, key: &[u8]) -> Result<bool, StoreError> {
        let db = self.db()?;
        let removed = (&db.records, &db.deadlines)
            .transaction(|(records, deadlines)| {
                let Some(old) = records.remove(key)? else {
                    return Ok(None);
                };
                let (at, source) = codec::deadline_and_source(KIND_RECORD, &old).map_err(abort)?;
                deadlines.remove(codec::deadline_key(at, KIND_RECORD, key))?;
                Ok(Some(source))
            })
            .map_err(tx_err)?;
        let Some(source) = removed else {
            return Ok(false);
        };
        self.counts.records = self.counts.records.saturating_sub(1);
        self.release(source.as_deref(), true);
        Ok(true)
    }

    /// The providers stored for `key` (at most `providers_per_key`, since a newcomer
    /// is refused at that many: one short prefix scan).
    fn listed(&self, key: &[u8]) -> Result<Vec<Listed>, StoreError> {
        let mut out = Vec::new();
        for kv in self
            .db()?
            .providers
            .scan_prefix(codec::provider_prefix(key))
        {
            let (k, v) = kv.map_err(store_err)?;
            let (_, id) = codec::decode_provider_key(&k).map_err(store_err)?;
            let (provider, source) = codec::decode_provider(id, &v).map_err(store_err)?;
            out.push(Listed {
                tree_key: k.to_vec(),
                provider,
                source,
            });
        }
        Ok(out)
    }

    pub(crate) fn add_provider_unnoted(
        &mut self,
        key: &[u8],
        provider: StoredProvider,
        source: Option<&[u8]>,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        // Expired providers of this key make room at once, in the same transaction as
        // the write (or alone, when the write is refused).
        let (expired, live): (Vec<_>, Vec<_>) = self
            .listed(key)?
            .into_iter()
            .partition(|l| l.provider.expires_at <= now);
        let existing = live
            .iter()
            .find(|l| l.provider.provider == provider.provider);
        // The bounds apply to what is left once the expired providers are gone: the
        // cap on keys counts this key only while it keeps a live provider, and the
        // source's share no longer holds its expired ones.
        let other_keys = self
            .counts
            .provider_keys
            .saturating_sub(usize::from(!live.is_empty() || !expired.is_empty()));
        let share = self.share_of(source).providers.saturating_sub(
            expired
                .iter()
                .filter(|l| source.is_some() && l.source.as_deref() == source)
                .count(),
        );
        let mut charged = None;
        let upsert = match existing {
            // A refresh: new deadline and addresses, charged where it was.
            Some(l) => Ok(Upsert {
                tree_key: l.tree_key.clone(),
                value: codec::encode_provider(&provider, l.source.as_deref()),
                old_deadline: Some(codec::deadline_key(
                    l.provider.expires_at,
                    KIND_PROVIDER,
                    &l.tree_key,
                )),
                new_deadline: codec::deadline_key(provider.expires_at, KIND_PROVIDER, &l.tree_key),
            }),
            None if live.is_empty() && other_keys >= self.limits.max_provider_keys => {
                Err(StoreError::Full)
            }
            None if live.len() >= self.limits.providers_per_key => Err(StoreError::KeyFull),
            None if source.is_some() && share >= self.limits.providers_per_source => {
                Err(StoreError::SourceShare)
            }
            None => {
                charged = Some(source);
                let tree_key = codec::provider_key(key, &provider.provider);
                Ok(Upsert {
                    value: codec::encode_provider(&provider, source),
                    old_deadline: None,
                    new_deadline: codec::deadline_key(
                        provider.expires_at,
                        KIND_PROVIDER,
                        &tree_key,
                    ),
                    tree_key,
                })
            }
        };
        let write = upsert.as_ref().ok();
        if !expired.is_empty() || write.is_some() {
            let db = self.db()?;
            (&db.providers, &db.deadlines)
                .transaction(|(providers, deadlines)| {
                    for l in &expired {
                        providers.remove(l.tree_key.as_slice())?;
                        deadlines.remove(codec::deadline_key(
                            l.provider.expires_at,
                            KIND_PROVIDER,
                            &l.tree_key,
                        ))?;
                    }
                    if let Some(u) = write {
                        providers.insert(u.tree_key.as_slice(), u.value.as_slice())?;
                        if let Some(d) = &u.old_deadline {
                            deadlines.remove(d.as_slice())?;
                        }
                        deadlines.insert(u.new_deadline.as_slice(), &[])?;
                    }
                    Ok(())
                })
                .map_err(tx_err)?;
        }
        for l in &expired {
            self.counts.providers = self.counts.providers.saturating_sub(1);
            self.release(l.source.as_deref(), false);
        }
        let added = usize::from(charged.is_some());
        if let Some(source) = charged {
            self.counts.providers += 1;
            self.charge(source, false);
        }
        let had = !expired.is_empty() || !live.is_empty();
        let has = !live.is_empty() || added > 0;
        if had && !has {
            self.counts.provider_keys = self.counts.provider_keys.saturating_sub(1);
        } else if !had && has {
            self.counts.provider_keys += 1;
        }
        upsert.map(drop)
    }

    fn has_providers(&self, prefix: &[u8]) -> Result<bool, StoreError> {
        Ok(self
            .db()?
            .providers
            .scan_prefix(prefix)
            .next()
            .transpose()
            .map_err(store_err)?
            .is_some())
    }

    /// Removes at most `max` entries due at `now`, soonest first, in chunks of
    /// [`EXPIRE_CHUNK`] per transaction; returns how many deadlines it handled.
    pub(crate) fn expire_unnoted(
        &mut self,
        now: UnixMillis,
        max: usize,
    ) -> Result<usize, StoreError> {
        let mut handled = 0;
        while handled < max {
            let db = self.db()?;
            let due = match now.checked_add(1) {
                Some(end) => db.deadlines.range(..end.to_be_bytes()),
                None => db.deadlines.iter(),
            };
            let mut chunk = Vec::new();
            for kv in due.take(EXPIRE_CHUNK.min(max - handled)) {
                let (k, _) = kv.map_err(store_err)?;
                let (kind, tree_key) = codec::decode_deadline_key(&k).map_err(store_err)?;
                let (kind, tree_key) = (kind, tree_key.to_vec());
                chunk.push((k, kind, tree_key));
            }
            if chunk.is_empty() {
                break;
            }
            // For each deadline: the source of the entry it removed, if there was one.
            let removed = (&db.records, &db.providers, &db.deadlines)
                .transaction(|(records, providers, deadlines)| {
                    let mut removed = Vec::with_capacity(chunk.len());
                    for (k, kind, tree_key) in &chunk {
                        deadlines.remove(k)?;
                        let tree = if *kind == KIND_RECORD {
                            records
                        } else {
                            providers
                        };
                        removed.push(match tree.remove(tree_key.as_slice())? {
                            None => None,
                            Some(old) => {
                                Some(codec::deadline_and_source(*kind, &old).map_err(abort)?.1)
                            }
                        });
                    }
                    Ok(removed)
                })
                .map_err(tx_err)?;
            handled += chunk.len();
            let mut emptied: Vec<Vec<u8>> = Vec::new();
            for ((_, kind, tree_key), gone) in chunk.iter().zip(removed) {
                let Some(source) = gone else { continue };
                if *kind == KIND_RECORD {
                    self.counts.records = self.counts.records.saturating_sub(1);
                    self.release(source.as_deref(), true);
                } else {
                    self.counts.providers = self.counts.providers.saturating_sub(1);
                    self.release(source.as_deref(), false);
                    if let Ok((key, _)) = codec::decode_provider_key(tree_key) {
                        emptied.push(codec::provider_prefix(key));
                    }
                }
            }
            emptied.sort();
            emptied.dedup();
            // Each key lost a provider in this chunk, so each was counted before it.
            for prefix in emptied {
                if !self.has_providers(&prefix)? {
                    self.counts.provider_keys = self.counts.provider_keys.saturating_sub(1);
                }
            }
        }
        Ok(handled)
    }
}
