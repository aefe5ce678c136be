#!/usr/bin/env python3
"""Issue 27, finding 3: do HTTP requests given up at once leave DHT lookups running
beyond the limits?

Eight fake nodes on 127.0.0.1 answer ping and find_node at once (so that the node
under test keeps them in its table) and get / get_peers only after 5 s. The node
(`--request-timeout-ms 6000`, so that it waits for them) gets N `GET /v1/immutable/T`
and N `GET /v1/mutable/K/watch` requests, each on its own connection closed right
after sending, all distinct targets. The fake nodes then count the lookups started
(distinct targets queried) and the most in flight at once (distinct targets with a
query not yet answered). Loopback only; ends within about 40 s.

    contrib/probes/http_lookups.py path/to/dht-node [N=1000]
"""

import heapq
import os
import select
import socket
import sys
import threading
import time
import json

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probelib import Node, bdecode, bencode, metric, request  # noqa: E402

SLOW = 5.0


class FakeNodes:
    def __init__(self, count=8):
        self.socks = []
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
            self.socks.append((s, os.urandom(20)))
        self.due = []  # (when, seq, sock, addr, payload, target)
        self.seq = 0
        self.pending = {}
        self.started = set()
        self.max_in_flight = 0
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def addrs(self):
        return ["127.0.0.1:%d" % s.getsockname()[1] for s, _ in self.socks]

    def run(self):
        by_fd = {s.fileno(): (s, nid) for s, nid in self.socks}
        while not self.stop:
            timeout = 0.05
            ready, _, _ = select.select(list(by_fd), [], [], timeout)
            for fd in ready:
                s, nid = by_fd[fd]
                try:
                    data, addr = s.recvfrom(2048)
                    msg, _ = bdecode(data)
                except (OSError, ValueError, IndexError):
                    continue
                if not isinstance(msg, dict) or msg.get(b"y") != b"q":
                    continue
                q, a = msg.get(b"q"), msg.get(b"a", {})
                reply = {"id": nid}
                target = None
                if q in (b"get", b"get_peers"):
                    target = a.get(b"target") or a.get(b"info_hash")
                    reply.update({"token": b"tok", "nodes": b""})
                elif q == b"find_node":
                    reply["nodes"] = b""
                payload = bencode({"t": msg.get(b"t", b""), "y": "r", "r": reply})
                if target is None:
                    s.sendto(payload, addr)
                    continue
                self.started.add(target)
                self.pending[target] = self.pending.get(target, 0) + 1
                self.seq += 1
                heapq.heappush(self.due, (time.time() + SLOW, self.seq, s, addr, payload, target))
            now = time.time()
            while self.due and self.due[0][0] <= now:
                _, _, s, addr, payload, target = heapq.heappop(self.due)
                try:
                    s.sendto(payload, addr)
                except OSError:
                    pass
                self.pending[target] -= 1
                if self.pending[target] == 0:
                    del self.pending[target]
            self.max_in_flight = max(self.max_in_flight, len(self.pending))


def give_up(addr, path):
    s = socket.socket()
    try:
        s.connect(addr)
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
    except OSError:
        pass
    s.close()


def main():
    binary = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    fakes = FakeNodes()
    args = ["--http", "127.0.0.1:0", "--request-timeout-ms", "6000",
            "--min-request-timeout-ms", "6000"]
    for a in fakes.addrs():
        args += ["--bootstrap", a]
    node = Node(binary, args)
    try:
        deadline = time.time() + 15
        while True:
            status, body = request(node.http, "GET", "/v1/node", timeout=5)
            if status == 200 and json.loads(body)["table"]["ipv4"]["good"] >= 8:
                break
            if time.time() > deadline:
                raise SystemExit("the node never kept the 8 fake nodes")
            time.sleep(0.2)
        # The bootstrap is over: only what the requests start counts.
        time.sleep(1)
        fakes.started.clear()
        fakes.max_in_flight = 0
        t0 = time.time()
        for i in range(n):
            give_up(node.http, "/v1/immutable/%040x" % (i + 1))
            give_up(node.http, "/v1/mutable/%064x/watch" % (i + 1))
        opened = time.time() - t0
        peak_gauge = 0.0
        end = time.time() + 3 * SLOW + 5
        while time.time() < end:
            g = metric(node.http, "dht_http_operations_in_flight")
            peak_gauge = max(peak_gauge, g or 0.0)
            time.sleep(0.5)
        print("requests: %d gets + %d watches, opened and closed in %.2f s" % (n, n, opened))
        print("lookups started: %d" % len(fakes.started))
        print("lookups in flight at once (most): %d" % fakes.max_in_flight)
        print("dht_http_operations_in_flight (most seen): %d" % peak_gauge)
    finally:
        fakes.stop = True
        node.stop()


if __name__ == "__main__":
    main()
