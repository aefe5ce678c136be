#!/usr/bin/env python3
"""Issue 27, item 10: does an SSE watch see every newer seq?

The review's sequence, on 10 loopback nodes with `--http --watch-poll 5`: a mutable
item is put with seq 1 through node 3; node 4 is asked to watch it; 2 s later seq 2 is
put through node 5; the watch must deliver seq 2 within 30 s. The review saw one
miss in five runs. This runs the sequence ROUNDS times at once (one key each) and
prints how many watches delivered seq 2, and how long each took.

    python3 contrib/probes/watch_seq.py target/release/dht-node [ROUNDS]
    ONESHOT=1 python3 contrib/probes/watch_seq.py ...   # puts through one-shots
"""

import os
import socket
import subprocess
import sys
import threading
import time

from probelib import Node, request


def keygen(binary, path):
    out = subprocess.run([binary, "keygen", "--out", path], check=True, capture_output=True)
    return out.stdout.decode().strip()


def sign(binary, key, value, seq):
    out = subprocess.run(
        [binary, "sign", value, "--key", key, "--seq", str(seq)], check=True, capture_output=True
    )
    return out.stdout


def put(binary, nodes, n, key, public, value, seq):
    """Puts seq through node n: over its HTTP API, or with ONESHOT=1 as the review did,
    with a one-shot `dht-node put --mutable` that joins through node n."""
    if os.environ.get("ONESHOT") == "1":
        seed = "%s:%d" % nodes[n].addr
        subprocess.run([binary, "--listen", "127.0.0.1:0", "--bootstrap", seed, "put",
                        "--mutable", "--key", key, "--seq", str(seq), value],
                       check=True, capture_output=True)
        return
    status, body = request(nodes[n].http, "PUT", "/v1/mutable/" + public,
                           body=sign(binary, key, value, seq))
    assert status == 200, (status, body)


def watch(addr, public, seen, started, i):
    """Reads the SSE stream until an event with seq 2 arrives or 30 s pass."""
    s = socket.create_connection(addr, timeout=35)
    s.sendall(("GET /v1/mutable/%s/watch HTTP/1.1\r\nHost: x\r\n"
               "Accept: text/event-stream\r\n\r\n" % public).encode())
    started[i].set()
    buf = b""
    deadline = time.time() + 32
    try:
        while time.time() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
            if b'"seq":2' in buf:
                seen[i] = time.time()
                return
    except OSError:
        pass
    finally:
        s.close()


def main():
    binary = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    nodes = [Node(binary, ["--no-bootstrap", "--http", "127.0.0.1:0", "--watch-poll", "5"], "n0")]
    seed = "%s:%d" % nodes[0].addr
    for n in range(1, 10):
        nodes.append(Node(binary, ["--bootstrap", seed, "--http", "127.0.0.1:0",
                                   "--watch-poll", "5"], "n%d" % n))
    try:
        time.sleep(float(os.environ.get("WARMUP", "3")))  # let the tables fill
        tmp = nodes[0].dir
        keys = [os.path.join(tmp, "k%d" % i) for i in range(rounds)]
        publics = [keygen(binary, k) for k in keys]
        for i in range(rounds):
            put(binary, nodes, 3, keys[i], publics[i], "one", 1)
        seen = [None] * rounds
        started = [threading.Event() for _ in range(rounds)]
        threads = [threading.Thread(target=watch, args=(nodes[4].http, publics[i], seen,
                                                        started, i)) for i in range(rounds)]
        for t in threads:
            t.start()
        for e in started:
            e.wait()
        time.sleep(2)
        put2 = time.time()
        for i in range(rounds):
            put(binary, nodes, 5, keys[i], publics[i], "two", 2)
        for t in threads:
            t.join()
        got = [s - put2 for s in seen if s is not None]
        print("watches that saw seq 2 within 30 s: %d of %d" % (len(got), rounds))
        if got:
            got.sort()
            print("delay after the put: min %.1f s, median %.1f s, max %.1f s"
                  % (got[0], got[len(got) // 2], got[-1]))
        for i, s in enumerate(seen):
            if s is None:
                print("missed: key %s" % publics[i])
        return 0 if len(got) == rounds else 1
    finally:
        for n in nodes:
            n.stop()


if __name__ == "__main__":
    sys.exit(main())
