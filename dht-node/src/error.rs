//! [`Error`]: why a [`crate::Dht`] call failed, and how KRPC error replies map to it.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;

use dht_core::krpc::{code, ErrorBody};
use dht_core::RequestError;

/// Why a [`Dht`](crate::Dht) call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The node task has stopped (after [`Dht::shutdown`](crate::Dht::shutdown), or it failed).
    #[error("the DHT node has shut down")]
    Shutdown,
    /// No node answered, or no node accepted a write and none refused it.
    #[error("no node answered")]
    NoResponse,
    /// BEP 44 error 205: the bencoded value is over 1000 bytes.
    #[error("value too big (over 1000 bytes bencoded; KRPC error 205)")]
    ValueTooBig,
    /// BEP 44 error 206: the signature does not verify.
    #[error("invalid signature (KRPC error 206)")]
    InvalidSignature,
    /// BEP 44 error 207: the salt is over 64 bytes.
    #[error("salt too big (over 64 bytes; KRPC error 207)")]
    SaltTooBig,
    /// BEP 44 error 301: the stored seq is not the `cas` given.
    #[error("compare-and-swap mismatch: the stored seq is not the expected one (KRPC error 301)")]
    CasMismatch,
    /// BEP 44 error 302: the stored seq is higher (or equal with another value).
    #[error("sequence number too low: a newer item is stored (KRPC error 302)")]
    SeqTooLow,
    /// Every node that answered refused with another KRPC error.
    #[error("refused by every node that answered: KRPC error {code} ({message})")]
    Refused {
        /// The most common error code among the refusals.
        code: i64,
        /// Its message, as the first node that sent it put it.
        message: String,
    },
    /// Refused before anything was sent: the value is not exactly one bencoded value.
    #[error("invalid request: {0}")]
    Invalid(RequestError),
    /// A socket or other I/O failure.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

/// Refusals the core makes before sending map to the errors nodes would have sent.
impl From<RequestError> for Error {
    fn from(e: RequestError) -> Error {
        match e {
            RequestError::ValueTooBig { .. } => Error::ValueTooBig,
            RequestError::SaltTooBig { .. } => Error::SaltTooBig,
            e => Error::Invalid(e),
        }
    }
}

impl Error {
    /// The typed error for a KRPC error body received for a write.
    pub fn from_krpc(e: &ErrorBody) -> Error {
        match e.code {
            code::VALUE_TOO_BIG => Error::ValueTooBig,
            code::INVALID_SIGNATURE => Error::InvalidSignature,
            code::SALT_TOO_BIG => Error::SaltTooBig,
            code::CAS_MISMATCH => Error::CasMismatch,
            code::SEQ_TOO_LOW => Error::SeqTooLow,
            c => Error::Refused {
                code: c,
                message: e.message.clone(),
            },
        }
    }
}

/// The refusal most nodes agreed on (the lowest code on a tie, so the answer does
/// not depend on reply order).
pub(crate) fn most_common_refusal(errors: &[(SocketAddr, ErrorBody)]) -> Option<&ErrorBody> {
    let mut counts: BTreeMap<i64, (usize, &ErrorBody)> = BTreeMap::new();
    for (_, e) in errors {
        counts.entry(e.code).or_insert((0, e)).0 += 1;
    }
    let best = counts.values().map(|(n, _)| *n).max()?;
    counts.values().find(|(n, _)| *n == best).map(|(_, e)| *e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_common_refusal_wins() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let e = |code| ErrorBody::new(code, String::new());
        let errors = vec![(a, e(302)), (a, e(301)), (a, e(302))];
        assert!(matches!(
            Error::from_krpc(most_common_refusal(&errors).unwrap()),
            Error::SeqTooLow
        ));
        assert!(most_common_refusal(&[]).is_none());
    }
}
