//! KRPC messages (BEP 5, 32, 42, 43, 44, 51): typed values and their bencoded wire form.
//!
//! Decoding never panics, never allocates more than the input's size, and bounds nesting
//! depth. A malformed *query* decodes to [`DecodeError`] carrying its transaction id, so
//! that the node can answer it with error 203; anything else malformed is dropped.
//!
//! `message.rs` holds the types and their constructors, `codec.rs` their bencoded
//! form; this module puts both under one name.

pub(crate) mod codec;
mod message;

pub use codec::decode;
pub use message::{Body, DecodeError, ErrorBody, Message, Method, PutArgs, Query, Response, Want};

/// Largest UDP payload we send for ordinary messages (BEP 32).
pub const MAX_SEND: usize = 1024;
/// Largest payload we ever send: BEP 44 messages carrying a value (IPv6 over Ethernet).
pub const MAX_SEND_BEP44: usize = 1452;
/// Largest bencoded BEP 44 value (error 205 above it).
pub const MAX_VALUE_LEN: usize = 1000;
/// Largest BEP 44 salt (error 207 above it).
pub const MAX_SALT_LEN: usize = 64;
pub use crate::bencode::MAX_DEPTH;

/// KRPC error codes (BEP 5, BEP 44).
pub mod code {
    /// Generic error.
    pub const GENERIC: i64 = 201;
    /// Server error (ours: e.g. the store failed).
    pub const SERVER: i64 = 202;
    /// Protocol error: malformed packet, invalid argument, bad token.
    pub const PROTOCOL: i64 = 203;
    /// Method unknown.
    pub const METHOD_UNKNOWN: i64 = 204;
    /// BEP 44: message (v) too big.
    pub const VALUE_TOO_BIG: i64 = 205;
    /// BEP 44: invalid signature.
    pub const INVALID_SIGNATURE: i64 = 206;
    /// BEP 44: salt too big.
    pub const SALT_TOO_BIG: i64 = 207;
    /// BEP 44: CAS mismatch.
    pub const CAS_MISMATCH: i64 = 301;
    /// BEP 44: sequence number less than current.
    pub const SEQ_TOO_LOW: i64 = 302;
}
