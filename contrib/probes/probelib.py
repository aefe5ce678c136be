"""Shared by the probes in this folder: start `dht-node` processes on loopback, talk
HTTP/1.1 to them, read /metrics and /proc, and a minimal bencode for fake nodes.

Every probe is loopback only and bounded in count and time; each takes the
`dht-node` binary to run as its first argument, so that a build of an older commit
("before") and of this one ("after") are measured the same way.
"""

import os
import re
import signal
import socket
import subprocess
import tempfile
import time


class Node:
    """A `dht-node` process with `--http 127.0.0.1:0`, killed by stop()."""

    def __init__(self, binary, args, name="node"):
        self.dir = tempfile.mkdtemp(prefix="dht-probe-")
        self.log = os.path.join(self.dir, name + ".log")
        addr_file = os.path.join(self.dir, name + ".addr")
        cmd = [binary, "--listen", "127.0.0.1:0", "--addr-file", addr_file] + args
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log
            )
        deadline = time.time() + 10
        self.addr = None
        self.http = None
        while time.time() < deadline:
            text = open(self.log).read()
            if os.path.exists(addr_file) and open(addr_file).read().strip():
                host, port = open(addr_file).read().split()[0].rsplit(":", 1)
                self.addr = (host, int(port))
            m = re.search(r"dht-node http=(\S+)", text)
            if m:
                host, port = m.group(1).rsplit(":", 1)
                self.http = (host, int(port))
            if self.addr and (self.http or "--http" not in args):
                return
            if self.proc.poll() is not None:
                raise RuntimeError("dht-node exited:\n" + text)
            time.sleep(0.05)
        raise RuntimeError("dht-node did not start:\n" + open(self.log).read())

    def rss_kb(self):
        for line in open("/proc/%d/status" % self.proc.pid):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        self.resume()
        self.proc.kill()
        self.proc.wait()


def request(addr, method, path, headers=(), body=b"", timeout=40, source=None):
    """One HTTP/1.1 request on a new connection: (status, body); status 0 when the
    server closed the connection without an answer."""
    s = socket.socket()
    if source:
        s.bind((source, 0))
    s.settimeout(timeout)
    try:
        s.connect(addr)
        head = "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n" % (
            method, path, len(body))
        for k, v in headers:
            head += "%s: %s\r\n" % (k, v)
        s.sendall(head.encode() + b"\r\n" + body)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except (ConnectionError, socket.timeout, OSError):
        out = b""
    finally:
        s.close()
    if not out.startswith(b"HTTP/"):
        return 0, b""
    head, _, rest = out.partition(b"\r\n\r\n")
    return int(head.split()[1]), rest


def metric(addr, name):
    """A metric summed over its label sets, from /metrics; None if unanswered."""
    status, body = request(addr, "GET", "/metrics", timeout=5)
    if status != 200:
        return None
    total = 0.0
    for line in body.decode(errors="replace").splitlines():
        if line.startswith(name) and line[len(name):len(name) + 1] in (" ", "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def bencode(v):
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, dict):
        return b"d" + b"".join(bencode(k) + bencode(v[k]) for k in sorted(v)) + b"e"
    if isinstance(v, list):
        return b"l" + b"".join(bencode(x) for x in v) + b"e"
    raise TypeError(type(v))


def bdecode(b, i=0):
    """(value, next index); raises ValueError on bad input."""
    c = b[i:i + 1]
    if c == b"i":
        j = b.index(b"e", i)
        return int(b[i + 1:j]), j + 1
    if c == b"l":
        i, out = i + 1, []
        while b[i:i + 1] != b"e":
            v, i = bdecode(b, i)
            out.append(v)
        return out, i + 1
    if c == b"d":
        i, out = i + 1, {}
        while b[i:i + 1] != b"e":
            k, i = bdecode(b, i)
            v, i = bdecode(b, i)
            out[k] = v
        return out, i + 1
    if c.isdigit():
        j = b.index(b":", i)
        n = int(b[i:j])
        return b[j + 1:j + 1 + n], j + 1 + n
    raise ValueError("bad bencode")
