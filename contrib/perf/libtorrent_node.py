#!/usr/bin/python3
"""libtorrent's DHT node (Debian's python3-libtorrent) as a server to load, beside ours.

usage: /usr/bin/python3 contrib/perf/libtorrent_node.py 127.0.0.1:PORT

One session with only the DHT, on the given loopback address, until killed. It has no
bootstrap node (libtorrent's default is dht.libtorrent.org:25401) and local service
discovery, UPnP, NAT-PMP and the IP notifier are off: nothing leaves loopback. The
node's table is filled and loaded by `xtask fill` and `xtask load` exactly as ours is
(`cargo xtask perf --libtorrent`, `contrib/perf/serve_ab.sh` with LIBTORRENT=1).

libtorrent's defenses are set so that they do not cap what is measured, as ours exempt
loopback: every query comes from 127.0.0.1, and the defaults would block the source
after 5 packets a second (`dht_block_ratelimit`) and send at most 8,000 bytes a second
of replies (`dht_upload_rate_limit`); one node per IP in a bucket would keep all but one
of `xtask fill`'s contacts out (`dht_restrict_routing_ips`). Everything else (table
size, what it answers and how) is libtorrent's default.
"""

import signal
import sys
import time

import libtorrent as lt

# Far above any rate here, yet small enough for libtorrent's own arithmetic: with
# dht_block_ratelimit at 2^31 - 1 it answered almost nothing.
PACKETS_PER_SEC = 1 << 24
BYTES_PER_SEC = 1 << 30


def main():
    if len(sys.argv) != 2 or not sys.argv[1].startswith("127."):
        sys.exit("usage: libtorrent_node.py 127.0.0.1:PORT (loopback only)")
    settings = {
        "listen_interfaces": sys.argv[1],
        "enable_dht": True,
        "dht_bootstrap_nodes": "",
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_ignore_dark_internet": False,
        "dht_prefer_verified_node_ids": False,
        "dht_block_ratelimit": PACKETS_PER_SEC,
        "dht_upload_rate_limit": BYTES_PER_SEC,
        # Alerts cost the network thread work that nobody reads here.
        "alert_mask": 0,
    }
    ses = lt.session(settings)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("ready", sys.argv[1], flush=True)
    while True:
        time.sleep(3600)
    del ses


if __name__ == "__main__":
    main()
