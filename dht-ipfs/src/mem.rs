//! `MemStore`: the in-memory [`Store`]: BTreeMaps, a deadline index so that expiry costs
//! O(expired · log n), and the per-source counts of what each source stored.

use std::collections::{BTreeMap, BTreeSet};

use crate::peer::PeerId;
use crate::store::{
    Store, StoreCounts, StoreError, StoreLimits, StoredProvider, StoredRecord, UnixMillis,
};

/// What a deadline of the index is for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Deadline {
    Record(Vec<u8>),
    Provider(Vec<u8>, PeerId),
}

/// A stored entry and the source it is charged to (`None`: exempt).
type Charged<T> = (T, Option<Vec<u8>>);

/// How much one source has stored.
#[derive(Clone, Copy, Debug, Default)]
struct Share {
    records: usize,
    providers: usize,
}

/// The in-memory store.
#[derive(Debug, Default)]
pub struct MemStore {
    limits: StoreLimits,
    records: BTreeMap<Vec<u8>, Charged<StoredRecord>>,
    providers: BTreeMap<Vec<u8>, Vec<Charged<StoredProvider>>>,
    provider_count: usize,
    deadlines: BTreeSet<(UnixMillis, Deadline)>,
    shares: BTreeMap<Vec<u8>, Share>,
}

impl MemStore {
    /// An empty store with these limits.
    pub fn new(limits: StoreLimits) -> MemStore {
        MemStore {
            limits,
            ..MemStore::default()
        }
    }

    fn share(&mut self, source: &Option<Vec<u8>>) -> Option<&mut Share> {
        let s = source.as_ref()?;
        Some(self.shares.entry(s.clone()).or_default())
    }

    fn release(&mut self, source: &Option<Vec<u8>>, record: bool) {
        let Some(s) = source else { return };
        if let Some(share) = self.shares.get_mut(s) {
            if record {
                share.records = share.records.saturating_sub(1);
            } else {
                share.providers = share.providers.saturating_sub(1);
            }
            if share.records == 0 && share.providers == 0 {
                self.shares.remove(s);
            }
        }
    }

    fn records_of(&self, source: Option<&[u8]>) -> Share {
        source
            .and_then(|s| self.shares.get(s).copied())
            .unwrap_or_default()
    }

    fn remove_provider_at(&mut self, key: &[u8], i: usize) {
        let Some(list) = self.providers.get_mut(key) else {
            return;
        };
        let (p, source) = list.remove(i);
        if list.is_empty() {
            self.providers.remove(key);
        }
        self.provider_count -= 1;
        self.deadlines.remove(&(
            p.expires_at,
            Deadline::Provider(key.to_vec(), p.provider.clone()),
        ));
        self.release(&source, false);
    }
}

impl Store for MemStore {
    fn record(&self, key: &[u8], now: UnixMillis) -> Result<Option<StoredRecord>, StoreError> {
        Ok(self
            .records
            .get(key)
            .filter(|(r, _)| r.expires_at > now)
            .map(|(r, _)| r.clone()))
    }

    fn put_record(
        &mut self,
        record: StoredRecord,
        source: Option<&[u8]>,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let old = self.records.get(&record.key);
        let same_source = old.is_some_and(|(_, s)| s.as_deref() == source);
        if old.is_none() && self.records.len() >= self.limits.max_records {
            return Err(StoreError::Full);
        }
        if source.is_some()
            && !same_source
            && self.records_of(source).records >= self.limits.records_per_source
        {
            return Err(StoreError::SourceShare);
        }
        let _ = now;
        let key = record.key.clone();
        if let Some((r, s)) = self.records.remove(&key) {
            self.deadlines
                .remove(&(r.expires_at, Deadline::Record(key.clone())));
            self.release(&s, true);
        }
        let source = source.map(<[u8]>::to_vec);
        if let Some(share) = self.share(&source) {
            share.records += 1;
        }
        self.deadlines
            .insert((record.expires_at, Deadline::Record(key.clone())));
        self.records.insert(key, (record, source));
        Ok(())
    }

    fn remove_record(&mut self, key: &[u8]) -> Result<bool, StoreError> {
        let Some((r, s)) = self.records.remove(key) else {
            return Ok(false);
        };
        self.deadlines
            .remove(&(r.expires_at, Deadline::Record(key.to_vec())));
        self.release(&s, true);
        Ok(true)
    }

    fn add_provider(
        &mut self,
        key: &[u8],
        provider: StoredProvider,
        source: Option<&[u8]>,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        // Expired providers of this key make room at once (at most providers_per_key).
        while let Some(i) = self
            .providers
            .get(key)
            .and_then(|l| l.iter().position(|(p, _)| p.expires_at <= now))
        {
            self.remove_provider_at(key, i);
        }
        let existing = self
            .providers
            .get(key)
            .and_then(|l| l.iter().position(|(p, _)| p.provider == provider.provider));
        if let Some(i) = existing {
            // A refresh: new deadline and addresses, the share stays where it is.
            let Some(list) = self.providers.get_mut(key) else {
                return Ok(());
            };
            let old = std::mem::replace(&mut list[i].0, provider);
            let new_deadline = list[i].0.expires_at;
            self.deadlines.remove(&(
                old.expires_at,
                Deadline::Provider(key.to_vec(), old.provider.clone()),
            ));
            self.deadlines
                .insert((new_deadline, Deadline::Provider(key.to_vec(), old.provider)));
            return Ok(());
        }
        let len = self.providers.get(key).map_or(0, Vec::len);
        if len == 0 && self.providers.len() >= self.limits.max_provider_keys {
            return Err(StoreError::Full);
        }
        if len >= self.limits.providers_per_key {
            return Err(StoreError::KeyFull);
        }
        if source.is_some() && self.records_of(source).providers >= self.limits.providers_per_source
        {
            return Err(StoreError::SourceShare);
        }
        let source = source.map(<[u8]>::to_vec);
        if let Some(share) = self.share(&source) {
            share.providers += 1;
        }
        self.deadlines.insert((
            provider.expires_at,
            Deadline::Provider(key.to_vec(), provider.provider.clone()),
        ));
        self.providers
            .entry(key.to_vec())
            .or_default()
            .push((provider, source));
        self.provider_count += 1;
        Ok(())
    }

    fn providers(&self, key: &[u8], now: UnixMillis) -> Result<Vec<StoredProvider>, StoreError> {
        Ok(self
            .providers
            .get(key)
            .into_iter()
            .flatten()
            .filter(|(p, _)| p.expires_at > now)
            .map(|(p, _)| {
                let mut p = p.clone();
                if p.addrs_expire_at <= now {
                    p.addrs.clear();
                }
                p
            })
            .collect())
    }

    fn expire(&mut self, now: UnixMillis, max: usize) -> Result<usize, StoreError> {
        let mut removed = 0;
        while removed < max {
            let Some((at, _)) = self.deadlines.first() else {
                break;
            };
            if *at > now {
                break;
            }
            let Some((_, what)) = self.deadlines.pop_first() else {
                break;
            };
            match what {
                Deadline::Record(key) => {
                    if let Some((_, s)) = self.records.remove(&key) {
                        self.release(&s, true);
                    }
                }
                Deadline::Provider(key, id) => {
                    if let Some(i) = self
                        .providers
                        .get(&key)
                        .and_then(|l| l.iter().position(|(p, _)| p.provider == id))
                    {
                        self.remove_provider_at(&key, i);
                    }
                }
            }
            removed += 1;
        }
        Ok(removed)
    }

    fn counts(&self) -> StoreCounts {
        StoreCounts {
            records: self.records.len(),
            provider_keys: self.providers.len(),
            providers: self.provider_count,
        }
    }
}
