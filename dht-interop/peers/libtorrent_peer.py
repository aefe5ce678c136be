#!/usr/bin/python3
"""libtorrent (Debian's python3-libtorrent) as an interop peer.

Hosts --nodes N libtorrent sessions with only the DHT on 127.0.0.1 and speaks the
line protocol of the dht-interop crate (see its src/lib.rs). Every session gets the
loopback seed as its only bootstrap node (libtorrent's default is
dht.libtorrent.org:25401), and local service discovery, UPnP and NAT-PMP are off:
nothing leaves loopback. Loopback-only networks also need libtorrent's per-IP
defenses relaxed (all nodes share 127.0.0.1): see docs/INTEROP.md.
"""

import hashlib
import sys
import tempfile
import time

import libtorrent as lt

TIMEOUT = 20.0
# Torrents added to make libtorrent announce need a save path; nothing is written.
SAVE_DIR = tempfile.TemporaryDirectory(prefix="dht-interop-lt-")


# RFC 8032 reference arithmetic, only to derive a public key from a seed: the
# Python bindings take libtorrent's 64-byte expanded secret key plus the public key.
P = 2**255 - 19
L_ORDER = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
GY = 4 * pow(5, P - 2, P) % P
GX_SQ = (GY * GY - 1) * pow(D * GY * GY + 1, P - 2, P) % P
GX = pow(GX_SQ, (P + 3) // 8, P)
if (GX * GX - GX_SQ) % P != 0:
    GX = GX * pow(2, (P - 1) // 4, P) % P
if GX % 2 != 0:
    GX = P - GX
G = (GX, GY, 1, GX * GY % P)


def point_add(a, b):
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % P
    bb = (y1 + x1) * (y2 + x2) % P
    cc = 2 * t1 * t2 * D % P
    dd = 2 * z1 * z2 % P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def point_mul(s, p):
    q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = point_add(q, p)
        p = point_add(p, p)
        s >>= 1
    return q


def keypair(seed):
    """(public 32 bytes, libtorrent secret 64 bytes) of an ed25519 seed."""
    h = bytearray(hashlib.sha512(seed).digest())
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    a = int.from_bytes(h[:32], "little")
    x, y, z, _ = point_mul(a, G)
    zi = pow(z, P - 2, P)
    x, y = x * zi % P, y * zi % P
    public = int.to_bytes(y | ((x & 1) << 255), 32, "little")
    return public, bytes(h)


def session(bootstrap):
    settings = {
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": True,
        "dht_bootstrap_nodes": bootstrap,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        # Every node of the test network is 127.0.0.1: the defaults (one node per
        # IP in a bucket and in a lookup, 5 packets/s per IP) would keep out all
        # but one of them and ban the rest.
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_ignore_dark_internet": False,
        "dht_prefer_verified_node_ids": False,
        "dht_block_ratelimit": 100000,
        "dht_upload_rate_limit": 1 << 24,
        "alert_mask": lt.alert.category_t.all_categories,
    }
    return lt.session(settings)


def wait_for(ses, accept):
    """Pops alerts until accept(alert) returns a non-None value or time runs out."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        ses.wait_for_alert(200)
        for a in ses.pop_alerts():
            r = accept(a)
            if r is not None:
                return r
    return None


def run(ses, words):
    cmd = words[0]
    if cmd == "put_immutable":
        v = bytes.fromhex(words[1])
        target = ses.dht_put_immutable_item(v)
        n = wait_for(ses, lambda a: a.num_success if isinstance(a, lt.dht_put_alert) else None)
        if not n:
            return "err no node stored it"
        return "ok " + str(target)
    if cmd == "get_immutable":
        ses.dht_get_immutable_item(lt.sha1_hash(bytes.fromhex(words[1])))
        # The alert's item is {"key": target, "value": the decoded v}.
        item = wait_for(
            ses, lambda a: (a.item,) if isinstance(a, lt.dht_immutable_item_alert) else None
        )
        value = item[0].get("value") if item and isinstance(item[0], dict) else None
        if not isinstance(value, bytes):
            return "none"
        return "ok " + value.hex()
    if cmd == "put_mutable":
        public, secret = keypair(bytes.fromhex(words[1]))
        salt = b"" if words[2] == "-" else bytes.fromhex(words[2])
        ses.dht_put_mutable_item(secret, public, bytes.fromhex(words[4]), salt)
        seq = []

        def put_done(a):
            if isinstance(a, lt.dht_put_alert):
                seq.append(a.seq)
                return a.num_success
            return None

        n = wait_for(ses, put_done)
        if not n:
            return "err no node stored it"
        # libtorrent picks seq itself: one above the newest it found.
        return "ok " + str(seq[0])
    if cmd == "get_mutable":
        key = bytes.fromhex(words[1])
        salt = b"" if words[2] == "-" else bytes.fromhex(words[2])
        ses.dht_get_mutable_item(key, salt)

        def got(a):
            if isinstance(a, lt.dht_mutable_item_alert) and a.authoritative:
                return (a.seq, a.item)
            return None

        r = wait_for(ses, got)
        value = r[1].get("value") if r and isinstance(r[1], dict) else None
        if not isinstance(value, bytes) or (r[0] == 0 and value == b""):
            return "none"
        return "ok %d %s" % (r[0], value.hex())
    if cmd == "announce":
        # session.dht_announce cannot be called from the 2.0.8 bindings (its flags
        # type is not exported), so add the info_hash as a torrent without
        # metadata: libtorrent announces it to the DHT with its listen port, which
        # is what the reply gives back instead of the port asked for.
        atp = lt.add_torrent_params()
        atp.info_hashes = lt.info_hash_t(lt.sha1_hash(bytes.fromhex(words[1])))
        atp.save_path = SAVE_DIR.name
        ses.add_torrent(atp)
        wait_for(ses, lambda a: True if isinstance(a, lt.dht_reply_alert) else None)
        # The announce follows the get_peers lookup that the reply alert ends.
        time.sleep(2)
        return "ok %d" % ses.listen_port()
    if cmd == "get_peers":
        ses.dht_get_peers(lt.sha1_hash(bytes.fromhex(words[1])))
        peers = wait_for(
            ses, lambda a: a.peers() if isinstance(a, lt.dht_get_peers_reply_alert) else None
        )
        ports = sorted({p[1] for p in (peers or [])})
        return "ok " + ",".join(map(str, ports)) if ports else "none"
    return "err unknown command " + cmd


def main():
    nodes, bootstrap = 3, None
    args = sys.argv[1:]
    while args:
        if args[0] == "--nodes":
            nodes = max(1, int(args[1]))
        elif args[0] == "--bootstrap":
            bootstrap = args[1]
            if not bootstrap.startswith("127."):
                sys.exit("the bootstrap must be a loopback address")
        else:
            sys.exit("unknown argument " + args[0])
        args = args[2:]
    sessions = []
    for _ in range(nodes):
        boot = [bootstrap] if bootstrap else []
        if sessions:
            boot.append("127.0.0.1:%d" % sessions[0].listen_port())
        sessions.append(session(",".join(boot)))
    # Wait until every session listens.
    deadline = time.monotonic() + TIMEOUT
    while any(s.listen_port() == 0 for s in sessions) and time.monotonic() < deadline:
        time.sleep(0.05)
    print("ready " + " ".join("127.0.0.1:%d" % s.listen_port() for s in sessions), flush=True)
    ses = sessions[0]
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            break
        # Drop alerts of earlier commands, so a late one is not taken for this one's.
        ses.pop_alerts()
        try:
            reply = run(ses, words)
        except Exception as e:  # a bad command must not kill the peer
            reply = "err %s" % e
        print(" ".join(reply.split()), flush=True)


if __name__ == "__main__":
    main()
