//! Answering requests: one function per message type, as go-libp2p-kad-dht and
//! rust-libp2p answer them, every reply trimmed to `max_send_bytes` (16 KiB).
//!
//! FIND_NODE keys are arbitrary bytes (rust's `get_closest_peers` sends whatever it is
//! given): the key is hashed, never parsed. Closer peers are the k closest servers of
//! our table, never the requester. A PUT_VALUE that does not validate, or that the
//! validator ranks below the record we hold, gets its stream reset (go answers "old
//! record"); an equal one is accepted, so republishing succeeds. ADD_PROVIDER stores
//! only the sender itself, with at least one address, and is never answered.

use std::time::{Duration, Instant};

use dht_core::kernel::Contact;
use dht_core::{Output, StreamId};

use super::Node;
use crate::peer::{key_of, Key, PeerInfo};
use crate::store::{Store, StoredProvider, StoredRecord, UnixMillis};
use crate::validate::Validator;
use crate::wire::{self, ConnectionType, Message, MessageType, Record};

/// Provider keys (content multihashes) are 1 to 80 bytes.
pub(super) const MAX_PROVIDER_KEY: usize = 80;

/// Milliseconds of a duration, saturating.
pub(super) fn millis(d: Duration) -> UnixMillis {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl<S: Store, V: Validator> Node<S, V> {
    /// A request arrived on inbound stream `stream` from the authenticated `from`.
    pub(super) fn serve(&mut self, now: Instant, from: &PeerInfo, stream: StreamId, bytes: &[u8]) {
        if !self.is_server() {
            self.outputs.push_back(Output::Reset { stream });
            return;
        }
        let Ok(msg) = wire::decode_frame(bytes, self.config.max_request_bytes) else {
            self.outputs.push_back(Output::Reset { stream });
            return;
        };
        let max = self.config.max_send_bytes;
        let reply = match msg.kind() {
            // The most asked: written from each contact's cached bytes (`wire.rs`).
            Some(MessageType::FindNode) => {
                let closer = self.closest_to_send(&key_of(&msg.key), from, now);
                let fields: Vec<(&[u8], bool)> = closer
                    .iter()
                    .map(|(p, connected)| (p.reply_fields(), *connected))
                    .collect();
                let out = match wire::encode_closer_reply(MessageType::FindNode, &fields, max) {
                    Some(payload) => Output::Reply { stream, payload },
                    None => Output::Reset { stream },
                };
                self.outputs.push_back(out);
                return;
            }
            Some(MessageType::GetValue) => self.answer_get_value(&msg, from, now),
            Some(MessageType::PutValue) => self.answer_put_value(msg, from, now),
            Some(MessageType::GetProviders) => self.answer_get_providers(&msg, from, now),
            Some(MessageType::AddProvider) => {
                if !self.accept_add_provider(&msg, from, now) {
                    self.outputs.push_back(Output::Reset { stream });
                }
                return;
            }
            Some(MessageType::Ping) => Some(Message::new(MessageType::Ping, Vec::new())),
            None => None,
        };
        let out = match reply {
            Some(mut m) => {
                if wire::trim_to_fit(&mut m, max) {
                    Output::Reply {
                        stream,
                        payload: wire::encode_frame(&m),
                    }
                } else {
                    Output::Reset { stream }
                }
            }
            None => Output::Reset { stream },
        };
        self.outputs.push_back(out);
    }

    /// The k closest servers with addresses to `target`, closest first, not `except`
    /// (the requester), with only the addresses we may hand it (`addrs.rs`), each with
    /// whether we are connected to it.
    fn closest_to_send(
        &self,
        target: &Key,
        except: &PeerInfo,
        now: Instant,
    ) -> Vec<(PeerInfo, bool)> {
        let k = self.config.k;
        let public_only = self.public_only_with(except);
        let pick = |n: usize| {
            let closest = self.table.closest(target, n, now);
            let exhausted = closest.len() < n;
            let picked: Vec<(PeerInfo, bool)> = closest
                .into_iter()
                .filter(|p| p.id() != except.id())
                .map(|p| self.scoped(p, public_only))
                .filter(|p| !p.addrs().is_empty())
                .take(k)
                .map(|p| {
                    let connected = self.connected.contains(p.key());
                    (p, connected)
                })
                .collect();
            (picked, exhausted)
        };
        // The k closest are what we send unless the requester or peers left without
        // addresses are among them: the table's k closest are a prefix of its k + 1
        // closest, and finding k often takes one bucket where k + 1 takes them all.
        let (picked, exhausted) = pick(k);
        if picked.len() == k || exhausted {
            return picked;
        }
        // Look further for those that dropped out.
        pick(if public_only { 2 * k } else { k + 1 }).0
    }

    /// [`closest_to_send`](Self::closest_to_send) for the wire.
    pub(super) fn closer_peers(
        &self,
        target: &Key,
        except: &PeerInfo,
        now: Instant,
    ) -> Vec<wire::Peer> {
        self.closest_to_send(target, except, now)
            .into_iter()
            .map(|(p, connected)| {
                let c = if connected {
                    ConnectionType::Connected
                } else {
                    ConnectionType::NotConnected
                };
                p.to_wire(c)
            })
            .collect()
    }

    fn answer_get_value(&self, msg: &Message, from: &PeerInfo, now: Instant) -> Option<Message> {
        if msg.key.is_empty() {
            return None;
        }
        let mut reply = Message::new(MessageType::GetValue, msg.key.clone());
        // Stored records were validated when they came; a policy changed since may
        // refuse them now, and then they are not handed out.
        reply.record = self
            .store
            .record(&msg.key, self.wall(now))
            .ok()
            .flatten()
            .filter(|r| {
                self.validator
                    .validate(&r.key, &r.value, self.wall(now))
                    .is_ok()
            })
            .map(|r| Record {
                key: r.key,
                value: r.value,
                publisher: r.publisher.unwrap_or_default(),
                ..Record::default()
            });
        reply.closer_peers = self.closer_peers(&key_of(&msg.key), from, now);
        Some(reply)
    }

    /// The share a remote peer's writes are charged to: its IP (/64 for IPv6), or none
    /// for exempt (loopback, private) sources.
    fn source_of(&self, from: &PeerInfo) -> Option<Vec<u8>> {
        let ip = from.ip()?;
        if self.config.defense.is_exempt(ip) {
            return None;
        }
        Some(dht_core::source_of(ip).to_string().into_bytes())
    }

    fn answer_put_value(&mut self, msg: Message, from: &PeerInfo, now: Instant) -> Option<Message> {
        let record = msg.record.as_ref()?;
        if record.key != msg.key || msg.key.is_empty() {
            return None;
        }
        let wall = self.wall(now);
        self.validator
            .validate(&record.key, &record.value, wall)
            .ok()?;
        if let Some(held) = self.store.record(&record.key, wall).ok().flatten() {
            let best = self
                .validator
                .select(&record.key, &[&record.value, &held.value])
                .ok()?;
            if best != 0 {
                return None;
            }
        }
        // rust's `ttl` is honoured up to our own record lifetime.
        let mut ttl = self.config.record_ttl;
        if record.ttl > 0 {
            ttl = ttl.min(Duration::from_secs(u64::from(record.ttl)));
        }
        let stored = StoredRecord {
            key: record.key.clone(),
            value: record.value.clone(),
            publisher: (!record.publisher.is_empty()).then(|| record.publisher.clone()),
            expires_at: wall.saturating_add(millis(ttl)),
        };
        let source = self.source_of(from);
        self.store
            .put_record(stored, source.as_deref(), wall)
            .ok()?;
        // The echo: rust refuses a PUT_VALUE reply without the record.
        Some(msg)
    }

    fn accept_add_provider(&mut self, msg: &Message, from: &PeerInfo, now: Instant) -> bool {
        if msg.key.is_empty() || msg.key.len() > MAX_PROVIDER_KEY {
            return false;
        }
        let wall = self.wall(now);
        let source = self.source_of(from);
        let public_only = self.public_only_with(from);
        // Only the sender may announce itself, and only with an address to reach it
        // (one we may keep: `addrs.rs`).
        let providers = msg
            .provider_peers
            .iter()
            .filter_map(PeerInfo::from_wire)
            .map(|p| self.scoped(p, public_only))
            .filter(|p| p.id() == from.id() && !p.addrs().is_empty())
            .collect::<Vec<_>>();
        for p in providers {
            let entry = StoredProvider {
                provider: p.id().clone(),
                addrs: p.addrs().to_vec(),
                expires_at: wall.saturating_add(millis(self.config.provider_ttl)),
                addrs_expire_at: wall.saturating_add(millis(self.config.provider_addrs_ttl)),
            };
            // A full key or share drops the announcement: there is no reply to refuse.
            let _ = self
                .store
                .add_provider(&msg.key, entry, source.as_deref(), wall);
        }
        true
    }

    fn answer_get_providers(
        &self,
        msg: &Message,
        from: &PeerInfo,
        now: Instant,
    ) -> Option<Message> {
        if msg.key.is_empty() || msg.key.len() > MAX_PROVIDER_KEY {
            return None;
        }
        let mut reply = Message::new(MessageType::GetProviders, msg.key.clone());
        let public_only = self.public_only_with(from);
        // A provider left without an address we may hand out is still named: the
        // requester can look it up, as after its addresses' 24 h.
        reply.provider_peers = self
            .store
            .providers(&msg.key, self.wall(now))
            .unwrap_or_default()
            .into_iter()
            .map(|p| self.scoped(PeerInfo::new(p.provider, p.addrs), public_only))
            .map(|p| p.to_wire(ConnectionType::NotConnected))
            .collect();
        reply.closer_peers = self.closer_peers(&key_of(&msg.key), from, now);
        Some(reply)
    }
}
