//! Values as BEP 44 stores them: the bencoded byte string `<len>:<bytes>` that
//! `dht-node put VALUE` writes, and reading one back.

/// A bencoded byte string: `<len>:<bytes>`, the form `put VALUE` stores.
pub fn bencode_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut v = format!("{}:", bytes.len()).into_bytes();
    v.extend_from_slice(bytes);
    v
}

/// The bytes of a bencoded byte string, or `None` if `bencoded` is anything else.
pub fn bencoded_string(bencoded: &[u8]) -> Option<&[u8]> {
    let colon = bencoded.iter().position(|&b| b == b':')?;
    let digits = &bencoded[..colon];
    // Bencode forbids leading zeros and signs: "0:" is the only length starting with 0.
    if digits.is_empty()
        || !digits.iter().all(u8::is_ascii_digit)
        || (digits.len() > 1 && digits[0] == b'0')
    {
        return None;
    }
    let len: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let rest = &bencoded[colon + 1..];
    (rest.len() == len).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bencoded_string_round_trip() {
        assert_eq!(bencode_bytes(b"hello"), b"5:hello");
        assert_eq!(bencoded_string(b"5:hello"), Some(&b"hello"[..]));
        assert_eq!(bencoded_string(b"0:"), Some(&b""[..]));
        assert_eq!(bencoded_string(b"i5e"), None);
        assert_eq!(bencoded_string(b"05:hello"), None);
        assert_eq!(bencoded_string(b"6:hello"), None);
        assert_eq!(bencoded_string(b"-1:"), None);
    }
}
