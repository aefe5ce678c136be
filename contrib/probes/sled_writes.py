#!/usr/bin/env python3
"""Issue 27, finding 5 (issue 25, group commit): do writes to a sled node delay or
lose pings?

A node with `--store sled --no-local-exemption`; 128 sources (127.10.0.1 to
127.137.0.1, each its own address) fetch a token with get_peers and then announce
one info_hash each at 45 a second (the limit is 50), for 8 s; meanwhile a 129th
source pings every 50 ms. Reports the pings' p50 and p95 and how many were lost
(no answer within 2 s), and how many announces were answered. `--store mem` as a
second argument measures the memory store the same way. Loopback only; ends within
about 15 s.

    contrib/probes/sled_writes.py path/to/dht-node [sled|mem]
"""

import math
import os
import socket
import struct
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probelib import Node, bdecode, bencode  # noqa: E402

SOURCES = 128
WRITES_PER_SEC = 45
WRITING = 8.0
PING_EVERY = 0.05
LOST_AFTER = 2.0


def query(t, node_id, method, args):
    a = {b"id": node_id}
    a.update(args)
    return bencode({b"t": t, b"y": b"q", b"q": method, b"a": a})


def token(sock, node, node_id, info_hash):
    sock.settimeout(0.2)
    for attempt in range(20):
        sock.sendto(query(b"g%d" % attempt, node_id, b"get_peers",
                          {b"info_hash": info_hash}), node)
        try:
            data, _ = sock.recvfrom(2048)
            msg, _ = bdecode(data)
            tok = msg.get(b"r", {}).get(b"token")
            if tok:
                return tok
        except (socket.timeout, ValueError):
            pass
    raise SystemExit("no token for %s" % (sock.getsockname(),))


def writers(node, stop, counts):
    socks = []
    for i in range(SOURCES):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.%d.0.1" % (10 + i), 0))
        node_id = bytes([i]) * 20
        info_hash = bytes([0x40 ^ i]) * 20
        tok = token(s, node, node_id, info_hash)
        s.setblocking(False)
        msg = query(b"an", node_id, b"announce_peer",
                    {b"info_hash": info_hash, b"port": 6881, b"token": tok})
        socks.append((s, msg))
    ready.set()
    every = 1.0 / WRITES_PER_SEC
    nxt = time.monotonic()
    while not stop.is_set():
        for s, msg in socks:
            try:
                s.sendto(msg, node)
                counts[0] += 1
            except OSError:
                pass
            while True:
                try:
                    s.recvfrom(2048)
                    counts[1] += 1
                except OSError:
                    break
        nxt += every
        wait = nxt - time.monotonic()
        if wait > 0:
            time.sleep(wait)


def pinger(node, stop, rtts):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.200.0.1", 0))
    s.settimeout(0.005)
    sent = []
    nxt = time.monotonic()
    stopped = None
    while True:
        now = time.monotonic()
        if stopped is None and stop.is_set():
            stopped = now
        if stopped is not None and now >= stopped + LOST_AFTER:
            break
        if stopped is None and now >= nxt:
            s.sendto(query(struct.pack(">I", len(sent)), b"\xee" * 20, b"ping", {}), node)
            sent.append(now)
            rtts.append(None)
            nxt += PING_EVERY
        try:
            data, _ = s.recvfrom(2048)
        except OSError:
            continue
        at = time.monotonic()
        try:
            msg, _ = bdecode(data)
            (t,) = struct.unpack(">I", msg[b"t"])
        except (ValueError, KeyError, struct.error):
            continue
        if t < len(sent) and rtts[t] is None and at - sent[t] <= LOST_AFTER:
            rtts[t] = at - sent[t]


ready = threading.Event()


def main():
    binary = sys.argv[1]
    store = sys.argv[2] if len(sys.argv) > 2 else "sled"
    args = ["--no-bootstrap", "--no-local-exemption", "--store", store]
    if store == "sled":
        args += ["--data-dir", os.path.join(tempfile.mkdtemp(prefix="dht-probe-"), "data")]
    node = Node(binary, args)
    try:
        stop = threading.Event()
        counts = [0, 0]
        w = threading.Thread(target=writers, args=(node.addr, stop, counts))
        w.start()
        ready.wait(30)
        rtts = []
        p = threading.Thread(target=pinger, args=(node.addr, stop, rtts))
        p.start()
        time.sleep(WRITING)
        stop.set()
        w.join()
        p.join()
    finally:
        node.stop()
    answered = sorted(r for r in rtts if r is not None)
    lost = len(rtts) - len(answered)

    def q(x):
        # Nearest rank, as dht_measure::quantile.
        if not answered:
            return float("nan")
        return answered[min(len(answered), max(1, math.ceil(x * len(answered)))) - 1]

    print("store %s: %d pings, %d lost, p50 %.2f ms, p95 %.2f ms; %d announces by %d "
          "sources, %d replies" % (store, len(rtts), lost, q(0.5) * 1000, q(0.95) * 1000,
                                   counts[0], SOURCES, counts[1]))


if __name__ == "__main__":
    main()
