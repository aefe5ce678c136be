#!/usr/bin/env python3
"""Issue 27, finding 6: what do idle connections and trickled heads cost `--http`?

Opens N idle TCP connections (default 3,000) to a node's `--http` and holds them;
then 100 connections each send an unfinished request head in 8 KB pieces up to
380 KB. Reports the node's resident memory and open descriptors before, while held
and 15 s later (still held by the client), how many connections the server closed,
and whether `/metrics` answered meanwhile. Loopback only; ends within about 40 s.

    contrib/probes/http_conns.py path/to/dht-node [N=3000]
"""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probelib import Node, request  # noqa: E402


def closed(s):
    """Whether the server closed `s` (an answer such as 431 may come first)."""
    s.setblocking(False)
    while True:
        try:
            if s.recv(65536) == b"":
                return True
        except BlockingIOError:
            return False
        except OSError:
            return True


def main():
    binary = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    node = Node(binary, ["--http", "127.0.0.1:0", "--no-bootstrap"])
    try:
        time.sleep(0.5)
        rss0, fds0 = node.rss_kb(), node.fds()
        idle = []
        for _ in range(n):
            s = socket.socket()
            try:
                s.connect(node.http)
                idle.append(s)
            except OSError:
                s.close()
        trickle = []
        for _ in range(100):
            s = socket.socket()
            try:
                s.connect(node.http)
                s.sendall(b"GET /healthz HTTP/1.1\r\nx-slow: ")
                trickle.append(s)
            except OSError:
                s.close()
        piece = b"a" * 8192
        for _ in range(380 * 1024 // len(piece)):
            for s in trickle:
                try:
                    s.send(piece, socket.MSG_DONTWAIT)
                except OSError:
                    pass
            time.sleep(0.05)
        time.sleep(1)
        rss1, fds1 = node.rss_kb(), node.fds()
        t = time.time()
        m1 = request(node.http, "GET", "/metrics", timeout=5)[0]
        m1_ms = (time.time() - t) * 1000
        time.sleep(15)
        rss2, fds2 = node.rss_kb(), node.fds()
        t = time.time()
        m2 = request(node.http, "GET", "/metrics", timeout=5)[0]
        m2_ms = (time.time() - t) * 1000
        idle_closed = sum(closed(s) for s in idle)
        trickle_closed = sum(closed(s) for s in trickle)
        print("idle connections opened: %d; trickling: %d" % (len(idle), len(trickle)))
        print("RSS before / while held / 15 s later: %d / %d / %d KB (+%.1f MB, then +%.1f MB)"
              % (rss0, rss1, rss2, (rss1 - rss0) / 1024, (rss2 - rss0) / 1024))
        print("open fds before / while held / 15 s later: %d / %d / %d" % (fds0, fds1, fds2))
        print("/metrics while held: %s in %.0f ms; 15 s later: %s in %.0f ms"
              % (m1 or "no answer", m1_ms, m2 or "no answer", m2_ms))
        print("closed by the server after 15 s: %d of %d idle, %d of %d trickling"
              % (idle_closed, len(idle), trickle_closed, len(trickle)))
        for s in idle + trickle:
            s.close()
    finally:
        node.stop()


if __name__ == "__main__":
    main()
