//! The two encodings of an IPNS record: the `IpnsEntry` protobuf (prost derives on a
//! hand-written struct, as `wire.rs` does) and its signed `data`, a DAG-CBOR map read
//! and written with ciborium.

use std::fmt;

use ciborium::Value;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

/// `IpnsEntry` (the spec's proto3 message; every field optional).
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct IpnsEntry {
    /// V1 copy of `data[Value]`.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub value: Option<Vec<u8>>,
    /// V1 signature over `value ‖ validity ‖ "EOL"`: written for old readers, never
    /// verified.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub signature_v1: Option<Vec<u8>>,
    /// V1 copy of `data[ValidityType]` (an enum: varint on the wire).
    #[prost(int32, optional, tag = "3")]
    pub validity_type: Option<i32>,
    /// V1 copy of `data[Validity]`.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub validity: Option<Vec<u8>>,
    /// V1 copy of `data[Sequence]`.
    #[prost(uint64, optional, tag = "5")]
    pub sequence: Option<u64>,
    /// V1 copy of `data[TTL]`.
    #[prost(uint64, optional, tag = "6")]
    pub ttl: Option<u64>,
    /// The signer's protobuf `PublicKey`, for names that do not inline it.
    #[prost(bytes = "vec", optional, tag = "7")]
    pub pub_key: Option<Vec<u8>>,
    /// Signature over `"ipns-signature:" ‖ data`.
    #[prost(bytes = "vec", optional, tag = "8")]
    pub signature_v2: Option<Vec<u8>>,
    /// The DAG-CBOR document.
    #[prost(bytes = "vec", optional, tag = "9")]
    pub data: Option<Vec<u8>>,
}

/// The fields of `data` this crate reads; others are ignored, as the spec says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Data {
    pub value: Vec<u8>,
    pub validity: Vec<u8>,
    pub validity_type: u64,
    pub sequence: u64,
    /// Optional here: Go and js write it, but neither refuses a record without it.
    pub ttl: Option<u64>,
}

/// The only `ValidityType`: `Validity` is an end of life.
pub(super) const EOL: u64 = 0;

impl Data {
    /// Canonical DAG-CBOR: a definite-length map whose keys are sorted by length,
    /// then bytewise (`TTL`, `Value`, `Sequence`, `Validity`, `ValidityType`), and
    /// integers and lengths in their shortest form (ciborium writes them so).
    pub fn encode(&self) -> Vec<u8> {
        let text = |s: &str| Value::Text(s.to_string());
        let mut map = Vec::with_capacity(5);
        if let Some(ttl) = self.ttl {
            map.push((text("TTL"), Value::Integer(ttl.into())));
        }
        map.extend([
            (text("Value"), Value::Bytes(self.value.clone())),
            (text("Sequence"), Value::Integer(self.sequence.into())),
            (text("Validity"), Value::Bytes(self.validity.clone())),
            (
                text("ValidityType"),
                Value::Integer(self.validity_type.into()),
            ),
        ]);
        let mut out = Vec::new();
        // Writing to a Vec cannot fail, and every value here is one CBOR has.
        ciborium::ser::into_writer(&Value::Map(map), &mut out)
            .expect("a map of text keys, integers and bytes encodes into a Vec");
        out
    }

    /// Reads one CBOR map with nothing after it. Keys must be text (DAG-CBOR), each of
    /// the five fields at most once; `Value` and `Validity` bytes, the others unsigned.
    /// Nesting is bounded by ciborium (256 levels), and what is allocated grows with
    /// the input actually read, never with a declared length.
    pub fn decode(mut bytes: &[u8]) -> Option<Data> {
        let data: Data = ciborium::de::from_reader(&mut bytes).ok()?;
        bytes.is_empty().then_some(data)
    }
}

impl<'de> serde::Deserialize<'de> for Data {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Data, D::Error> {
        d.deserialize_map(DataVisitor)
    }
}

struct DataVisitor;

/// A CBOR byte string.
struct Bytes(Vec<u8>);

impl<'de> serde::Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

fn once<T, E: de::Error>(slot: &mut Option<T>, v: T, name: &'static str) -> Result<(), E> {
    if slot.replace(v).is_some() {
        return Err(E::duplicate_field(name));
    }
    Ok(())
}

impl<'de> Visitor<'de> for DataVisitor {
    type Value = Data;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the IPNS data map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Data, A::Error> {
        let (mut value, mut validity, mut validity_type, mut sequence, mut ttl) =
            (None, None, None, None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "Value" => once(&mut value, map.next_value::<Bytes>()?.0, "Value")?,
                "Validity" => once(&mut validity, map.next_value::<Bytes>()?.0, "Validity")?,
                "ValidityType" => once(&mut validity_type, map.next_value()?, "ValidityType")?,
                "Sequence" => once(&mut sequence, map.next_value()?, "Sequence")?,
                "TTL" => once(&mut ttl, map.next_value()?, "TTL")?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Data {
            value: value.ok_or_else(|| de::Error::missing_field("Value"))?,
            validity: validity.ok_or_else(|| de::Error::missing_field("Validity"))?,
            validity_type: validity_type.ok_or_else(|| de::Error::missing_field("ValidityType"))?,
            sequence: sequence.ok_or_else(|| de::Error::missing_field("Sequence"))?,
            ttl,
        })
    }
}
