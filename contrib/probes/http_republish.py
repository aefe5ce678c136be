#!/usr/bin/env python3
"""Issue 27, a Low finding: do HTTP writes grow what the node republishes without
bound, and can one be stopped over HTTP?

A seed and a node A with `--http` that joined it; 16 clients (the default write
pool) POST 4,000 distinct immutable values to A as fast as A answers. Reports the
statuses, how long the 4,000 took, what A republishes then (`/v1/node`), and what
`DELETE /v1/republishing/{target}` of the first value answers, with the count
after it. Each entry republished is a lookup and its puts again every 50 minutes
(15 for an announce), all due together when they were written together. Loopback
only; ends within about a minute.

    contrib/probes/http_republish.py path/to/dht-node [WRITES]
"""

import collections
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probelib import Node, request  # noqa: E402


def republishing(node):
    status, body = request(node.http, "GET", "/v1/node", timeout=5)
    return json.loads(body)["republishing"] if status == 200 else None


def main():
    binary = sys.argv[1]
    writes = int(sys.argv[2]) if len(sys.argv) > 2 else 4000
    seed = Node(binary, ["--no-bootstrap"], name="seed")
    a = Node(binary, ["--http", "127.0.0.1:0", "--bootstrap", "%s:%d" % seed.addr], name="a")
    try:
        deadline = time.time() + 10
        while True:
            status, body = request(a.http, "GET", "/v1/node", timeout=5)
            if status == 200 and json.loads(body)["table"]["ipv4"]["good"] >= 1:
                break
            if time.time() > deadline:
                raise SystemExit("the node never kept the seed")
            time.sleep(0.1)
        statuses = collections.Counter()
        first = {}
        lock = threading.Lock()
        counter = iter(range(writes))

        def client():
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                status, body = request(a.http, "POST", "/v1/immutable",
                                       body=b"probe value %d" % i, timeout=60)
                with lock:
                    statuses[status] += 1
                    if i == 0 and status == 200:
                        first["target"] = json.loads(body)["target"]

        t0 = time.time()
        threads = [threading.Thread(target=client) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.time() - t0
        print("%d writes in %.1f s: %s" % (writes, took, dict(sorted(statuses.items()))))
        print("republishing after them: %s" % republishing(a))
        target = first.get("target", "00" * 20)
        status, body = request(a.http, "DELETE", "/v1/republishing/%s" % target, timeout=5)
        print("DELETE /v1/republishing/<first target>: %d %s"
              % (status, body.decode(errors="replace").strip()[:200]))
        print("republishing after the DELETE: %s" % republishing(a))
    finally:
        a.stop()
        seed.stop()


if __name__ == "__main__":
    main()
