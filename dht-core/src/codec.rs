//! Bencode <-> [`crate::krpc::Message`]. (Implemented by the codec work.)

use crate::krpc::{DecodeError, Message};

pub(crate) fn decode_message(bytes: &[u8]) -> Result<Message, DecodeError> {
    let _ = bytes;
    todo!("codec work")
}

pub(crate) fn encode_message(msg: &Message, out: &mut Vec<u8>) {
    let _ = (msg, out);
    todo!("codec work")
}
