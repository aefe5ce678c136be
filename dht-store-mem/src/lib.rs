//! In-memory [`dht_core::Store`]. (Written by the store work.)
