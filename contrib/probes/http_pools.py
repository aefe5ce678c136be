#!/usr/bin/env python3
"""Issue 27, finding 7: can held reads refuse everyone else's requests?

A node whose only contact has gone silent (SIGSTOP), so that every lookup hangs
until `--http-deadline-ms` (3 s here); one client (127.0.0.1) opens 64 GETs at once
and holds them. Meanwhile: a token-authorized write (POST /v1/announce), a GET from
another client (127.0.0.2) and one more GET from the first client. Reports each
status (503: refused at once; 504: ran until the deadline) and what the 64 got.
Loopback only; ends within about 20 s.

    contrib/probes/http_pools.py path/to/dht-node
"""

import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probelib import Node, request  # noqa: E402


def main():
    binary = sys.argv[1]
    seed = Node(binary, ["--no-bootstrap"], name="seed")
    token = os.path.join(seed.dir, "token")
    with open(token, "w") as f:
        f.write("s3cret\n")
    a = Node(binary, ["--http", "127.0.0.1:0", "--bootstrap", "%s:%d" % seed.addr,
                      "--request-timeout-ms", "20000", "--min-request-timeout-ms", "20000",
                      "--http-deadline-ms", "3000", "--http-token-file", token], name="a")
    try:
        deadline = time.time() + 10
        while True:
            status, body = request(a.http, "GET", "/v1/node", timeout=5)
            if status == 200 and json.loads(body)["table"]["ipv4"]["good"] >= 1:
                break
            if time.time() > deadline:
                raise SystemExit("the node never kept the seed")
            time.sleep(0.1)
        seed.pause()
        held = [None] * 64

        def hold(i):
            held[i] = request(a.http, "GET", "/v1/immutable/%040x" % (i + 1))[0]

        threads = [threading.Thread(target=hold, args=(i,)) for i in range(64)]
        for t in threads:
            t.start()
        time.sleep(1)
        auth = [("Authorization", "Bearer s3cret")]
        t0 = time.time()
        write = request(a.http, "POST", "/v1/announce/%s?port=6881" % ("ab" * 20), auth)[0]
        write_s = time.time() - t0
        t0 = time.time()
        other = request(a.http, "GET", "/v1/immutable/%s" % ("ee" * 20), source="127.0.0.2")[0]
        other_s = time.time() - t0
        t0 = time.time()
        again = request(a.http, "GET", "/v1/immutable/%s" % ("dd" * 20))[0]
        again_s = time.time() - t0
        for t in threads:
            t.join()
        print("the 64 held GETs of 127.0.0.1: %d ran (504), %d refused (503)"
              % (held.count(504), held.count(503)))
        print("authorized write meanwhile: %d after %.1f s" % (write, write_s))
        print("GET from 127.0.0.2 meanwhile: %d after %.1f s" % (other, other_s))
        print("65th GET from 127.0.0.1: %d after %.1f s" % (again, again_s))
    finally:
        a.stop()
        seed.stop()


if __name__ == "__main__":
    main()
