#!/usr/bin/env bash
# Checks the image `cargo xtask image` wrote to DIR (default target/container-image), without a
# container runtime (this machine has no cgroup delegation to run one):
#   1. the OCI config: user 10001:10001, the entrypoint, no CMD, ports 4001/tcp, 6881/udp and
#      9181/tcp, volume /data, linux/amd64, one layer;
#   2. the layer holds exactly the expected files, with their owners and modes;
#   3. the layer extracted as a root filesystem, plus an /etc/hosts naming a loopback
#      node: a node started in it with chroot as the image's user, on the image's own
#      config (sled store in /data), answers /healthz, and `dht-node ping` run in the
#      same root reaches it by name (musl reads /etc/hosts: no NSS library needed),
#      while a name missing from /etc/hosts does not resolve.
# Root runs chroot --userspec; anyone else runs it in a user namespace (unshare -r).
set -euo pipefail

dir=${1:-target/container-image}
layout=$dir/oci
[ -f "$layout/index.json" ] || { echo "check: no OCI layout in $layout (run cargo xtask image)" >&2; exit 2; }
work=$(mktemp -d)
seed_pid=
cleanup() {
  if [ -n "$seed_pid" ]; then kill "$seed_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "check: $*" >&2; exit 1; }

echo "check: image config"
layer=$(python3 - "$layout" <<'EOF'
import json, os, sys
layout = sys.argv[1]
def blob(digest):
    return os.path.join(layout, "blobs", *digest.split(":", 1))
index = json.load(open(os.path.join(layout, "index.json")))
manifests = index["manifests"]
if len(manifests) != 1:
    sys.exit(f"check: {len(manifests)} manifests in the index, expected 1")
manifest = json.load(open(blob(manifests[0]["digest"])))
image = json.load(open(blob(manifest["config"]["digest"])))
config = image.get("config", {})
def expect(what, got, want):
    if got != want:
        sys.exit(f"check: {what} is {got!r}, expected {want!r}")
user = config.get("User", "")
expect("user", user, "10001:10001")
if user.split(":")[0] in ("", "0", "root"):
    sys.exit(f"check: the image runs as root ({user!r})")
expect("entrypoint", config.get("Entrypoint"),
       ["/usr/local/bin/dht-node", "--config", "/etc/dht-node/dht-node.toml"])
expect("cmd", config.get("Cmd"), None)
expect("exposed ports", sorted(config.get("ExposedPorts", {})), ["4001/tcp", "6881/udp", "9181/tcp"])
expect("volumes", sorted(config.get("Volumes", {})), ["/data"])
expect("platform", (image.get("os"), image.get("architecture")), ("linux", "amd64"))
layers = manifest["layers"]
expect("layer count", len(layers), 1)
print(blob(layers[0]["digest"]))
EOF
)

echo "check: layer contents"
expected="drwx------ 10001/10001 data/
drwxr-xr-x 0/0 etc/
drwxr-xr-x 0/0 etc/dht-node/
-rw-r--r-- 0/0 etc/dht-node/dht-node.toml
drwxr-xr-x 0/0 usr/
drwxr-xr-x 0/0 usr/local/
drwxr-xr-x 0/0 usr/local/bin/
-rwxr-xr-x 0/0 usr/local/bin/dht-node"
found=$(tar -tvzf "$layer" --numeric-owner | awk '{ p = $NF; sub(/^\.?\//, "", p); print $1, $2, p }' | LC_ALL=C sort -k3)
if [ "$found" != "$expected" ]; then
  printf 'check: the layer holds\n%s\nexpected\n%s\n' "$found" "$expected" >&2
  exit 1
fi

echo "check: chroot into the image's root filesystem"
root=$work/rootfs
mkdir "$root"
tar -xzf "$layer" -C "$root" --numeric-owner
mkdir -p "$root/etc"
printf '127.0.0.1 localhost\n127.0.0.1 seed.dht.test\n' > "$root/etc/hosts"
if [ "$(id -u)" = 0 ]; then
  chroot_as_user=(chroot --userspec=10001:10001 "$root")
else
  chroot_as_user=(unshare -r chroot "$root")
fi
# One-shot commands in the root, bounded in time.
in_root_bounded() { timeout 60 "${chroot_as_user[@]}" "$@"; }
http_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The image's entrypoint and config, on loopback and without the public routers (not
# through a function: $! must be the node itself, which chroot becomes).
"${chroot_as_user[@]}" /usr/local/bin/dht-node --config /etc/dht-node/dht-node.toml \
  --listen 127.0.0.1:0 --no-bootstrap --http "127.0.0.1:$http_port" --addr-file /data/addr \
  2> "$work/seed.log" &
seed_pid=$!
for _ in $(seq 300); do
  [ -s "$root/data/addr" ] && break
  kill -0 "$seed_pid" 2>/dev/null || { cat "$work/seed.log" >&2; fail "the node in the root filesystem exited"; }
  sleep 0.1
done
[ -s "$root/data/addr" ] || { cat "$work/seed.log" >&2; fail "the node wrote no address within 30 s"; }
port=$(head -n 1 "$root/data/addr" | sed 's/.*://')
python3 -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:$http_port/healthz', timeout=10).status != 200)" \
  || fail "/healthz did not answer 200"
[ -f "$root/data/DHT-DATA-DIR" ] || fail "the sled store did not initialise /data"

id=$(in_root_bounded /usr/local/bin/dht-node --listen 127.0.0.1:0 --no-bootstrap ping "seed.dht.test:$port") \
  || { cat "$work/seed.log" >&2; fail "ping seed.dht.test:$port failed"; }
[[ $id =~ ^[0-9a-f]{40}$ ]] || fail "ping printed '$id', not a node id"
echo "check: ping seed.dht.test:$port by name from the image's root: node $id"
if in_root_bounded /usr/local/bin/dht-node --listen 127.0.0.1:0 --no-bootstrap ping "missing.dht.test:$port" 2>/dev/null; then
  fail "a name missing from /etc/hosts resolved"
fi

kill -TERM "$seed_pid"
status=0
wait "$seed_pid" || status=$?
seed_pid=
[ "$status" = 0 ] || { cat "$work/seed.log" >&2; fail "the node exited with $status on SIGTERM"; }
echo "check: the image is as expected"
