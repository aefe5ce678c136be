//! What an application asks of a node ([`Request`]), what is refused before anything
//! leaves ([`RequestError`]) and what a finished query found ([`Outcome`]).

use crate::peer::PeerInfo;
use crate::validate::RecordError;
use crate::wire::Record;

/// Every command a node runs, started with `Overlay::start`.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// Joins the DHT: a lookup of our own key through `seeds` and the table, then one
    /// lookup into each bucket that is not full. Ends with [`Outcome::Peers`].
    Bootstrap {
        /// Known servers, with their addresses.
        seeds: Vec<PeerInfo>,
    },
    /// The k closest servers to `key` (any bytes: the lookup is toward its SHA-256).
    /// Ends with [`Outcome::Peers`].
    FindNode {
        /// The key's preimage.
        key: Vec<u8>,
    },
    /// Stores a record at the k closest servers to its key (and here), and republishes
    /// it until the node drops. Ends with [`Outcome::Stored`].
    PutRecord {
        /// The record key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// The best valid record under `key`: ours, or the first found by a lookup.
    /// Ends with [`Outcome::Record`].
    GetRecord {
        /// The record key.
        key: Vec<u8>,
    },
    /// Announces this node as a provider of `key` to the k closest servers, and again
    /// at every republish interval. Ends with [`Outcome::Provided`].
    StartProviding {
        /// The provider key (a content multihash).
        key: Vec<u8>,
    },
    /// The providers of `key` found by a lookup. Ends with [`Outcome::Providers`].
    GetProviders {
        /// The provider key.
        key: Vec<u8>,
    },
}

/// A command refused before any request left.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The record does not validate here; no server would take it.
    #[error("invalid record: {0}")]
    InvalidRecord(RecordError),
    /// The message would not fit the 16 KiB a request may take.
    #[error("request too large")]
    TooLarge,
    /// A provider key must be 1 to 80 bytes.
    #[error("provider key must be 1 to 80 bytes")]
    BadKey,
    /// Our own store refused the record or provider.
    #[error("local store: {0}")]
    Store(crate::store::StoreError),
}

/// What a finished query found.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// [`Request::Bootstrap`] and [`Request::FindNode`]: the closest servers that
    /// answered, closest first.
    Peers {
        /// Closest responders.
        closest: Vec<PeerInfo>,
    },
    /// [`Request::PutRecord`]: how many of the closest servers acknowledged it.
    Stored {
        /// The record key.
        key: Vec<u8>,
        /// Servers that echoed the record back.
        acks: usize,
        /// Servers it was sent to.
        sent: usize,
    },
    /// [`Request::GetRecord`]: the best valid record found, if any.
    Record {
        /// The best record (by the validator's `select`).
        record: Option<Record>,
    },
    /// [`Request::StartProviding`]: how many servers the announcement went to.
    Provided {
        /// The provider key.
        key: Vec<u8>,
        /// Servers sent an ADD_PROVIDER (it has no reply).
        sent: usize,
    },
    /// [`Request::GetProviders`]: the providers found, by PeerId.
    Providers {
        /// The provider key.
        key: Vec<u8>,
        /// Providers, each with the addresses it was reported with.
        providers: Vec<PeerInfo>,
    },
}
