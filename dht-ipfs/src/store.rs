//! The records-and-providers store: the [`Store`] trait every backend implements, its
//! limits ([`StoreLimits`]) and what it keeps ([`StoredRecord`], [`StoredProvider`]).
//!
//! A store enforces its own bounds, so that every backend bounds the same way and one
//! conformance suite checks them (`dht_ipfs::conformance`): a cap on records and on
//! provider keys, 20 providers per key (when full, newcomers are refused until one
//! expires: keeping the PeerIds closest to the key instead would let an attacker grind
//! ids past honest providers), and per-source shares so that one source cannot fill the
//! store. A source is what the node says it is (an IP or /64 for remote peers);
//! `None` is exempt (the node itself, loopback peers). Readers never see what has
//! expired, even before [`Store::expire`], which removes at most `max` entries a call.

use multiaddr::Multiaddr;

use crate::peer::PeerId;

pub use dht_core::UnixMillis;

/// A record as kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    /// The record key (the preimage).
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// Its original publisher, when the message named one.
    pub publisher: Option<Vec<u8>>,
    /// When it expires.
    pub expires_at: UnixMillis,
}

/// A provider of a key as kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredProvider {
    /// The provider.
    pub provider: PeerId,
    /// Its addresses, returned until `addrs_expire_at`.
    pub addrs: Vec<Multiaddr>,
    /// When the provider record expires (48 h after the announcement).
    pub expires_at: UnixMillis,
    /// When its addresses stop being handed out (24 h: go-libp2p-kad-dht's Amino
    /// default); the provider is still returned, without addresses, until it expires.
    pub addrs_expire_at: UnixMillis,
}

/// The bounds a store enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    /// Most records.
    pub max_records: usize,
    /// Most keys with providers.
    pub max_provider_keys: usize,
    /// Most providers of one key.
    pub providers_per_key: usize,
    /// Most records one source may have stored.
    pub records_per_source: usize,
    /// Most provider entries one source may have stored.
    pub providers_per_source: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_records: 16_384,
            max_provider_keys: 65_536,
            providers_per_key: 20,
            // A sixty-fourth of the store: it takes 64 sources to fill it.
            records_per_source: 256,
            providers_per_source: 4_096,
        }
    }
}

/// Counts of what a store holds (expired entries not yet removed included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreCounts {
    /// Records.
    pub records: usize,
    /// Keys with at least one provider.
    pub provider_keys: usize,
    /// Provider entries over all keys.
    pub providers: usize,
}

/// Why a store refused or failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store holds its maximum of records or provider keys.
    #[error("store full")]
    Full,
    /// The source has used its share.
    #[error("source over its share")]
    SourceShare,
    /// The key has its maximum of unexpired providers.
    #[error("key has its maximum of providers")]
    KeyFull,
    /// The backend failed.
    #[error("store backend: {0}")]
    Backend(String),
}

/// What keeps records and providers (see the module doc for the contract).
pub trait Store {
    /// The unexpired record under `key`.
    fn record(&self, key: &[u8], now: UnixMillis) -> Result<Option<StoredRecord>, StoreError>;

    /// Stores `record`, replacing any under its key, charged to `source`.
    fn put_record(
        &mut self,
        record: StoredRecord,
        source: Option<&[u8]>,
        now: UnixMillis,
    ) -> Result<(), StoreError>;

    /// Removes the record under `key`; true if there was one.
    fn remove_record(&mut self, key: &[u8]) -> Result<bool, StoreError>;

    /// Adds or refreshes `provider` for `key`, charged to `source`.
    fn add_provider(
        &mut self,
        key: &[u8],
        provider: StoredProvider,
        source: Option<&[u8]>,
        now: UnixMillis,
    ) -> Result<(), StoreError>;

    /// The unexpired providers of `key`, addresses emptied once they expired.
    fn providers(&self, key: &[u8], now: UnixMillis) -> Result<Vec<StoredProvider>, StoreError>;

    /// Removes at most `max` entries expired at `now`; returns how many it removed.
    fn expire(&mut self, now: UnixMillis, max: usize) -> Result<usize, StoreError>;

    /// What it holds.
    fn counts(&self) -> StoreCounts;
}
