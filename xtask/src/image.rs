//! `cargo xtask image`: the OCI container image of `dht-node`, built offline.
//!
//! The image is `FROM scratch` with one layer: a static `dht-node` (every feature, musl,
//! so names resolve from the container's `/etc/hosts` and `/etc/resolv.conf` without
//! glibc's NSS libraries), the default config `contrib/image/dht-node.toml` and an empty
//! `/data` owned by the image's user. buildah assembles it in a private vfs storage under
//! the output directory (no daemon, no base image pulled, nothing run inside it), then
//! writes an OCI layout and an OCI archive. `contrib/image/check.sh` inspects the result.

use std::fs::{self, Permissions};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::testnet::{target_dir, workspace_root};
use crate::{out, Error, Options};

pub const USAGE: &str = "\
cargo xtask image: the dht-node container image (OCI, FROM scratch), built offline

USAGE:
    cargo xtask image [--out DIR] [--binary FILE]

Builds dht-node with every feature (udp, mem, quic, sled, ipfs) for x86_64-unknown-linux-musl
(a static binary: it resolves names from /etc/hosts and /etc/resolv.conf with no NSS
library) in the `image` profile (release, stripped), then assembles with buildah (vfs
storage and its run root under DIR, so nothing outside DIR changes):

    /usr/local/bin/dht-node          the binary, root-owned, 0755
    /etc/dht-node/dht-node.toml      contrib/image/dht-node.toml: listen 0.0.0.0:6881,
                                     sled store in /data, --http 0.0.0.0:9181, and the
                                     public routers as bootstrap (override with flags)
    /data/                           the data dir, owned by 10001:10001, 0700

User 10001:10001; ENTRYPOINT [\"/usr/local/bin/dht-node\", \"--config\",
\"/etc/dht-node/dht-node.toml\"], no CMD (arguments are flags for the node); ports
6881/udp (DHT), 9181/tcp (--http) and 4001/tcp (--overlay ipfs); volume /data; stop
signal SIGTERM (the node saves its table and flushes the store). File and image times
are 0, so one binary gives one image digest. Writes DIR/oci (an OCI image layout, tag VERSION) and
DIR/dht-node-VERSION.oci.tar (the same as an archive: `skopeo copy
oci-archive:FILE docker://REGISTRY/dht-node:VERSION`, or `podman load -i FILE`), then
prints the image's size and its layer listing.

Needs: the rustup target x86_64-unknown-linux-musl (added when missing), musl-gcc (ring's
C code; Debian's musl-tools) and buildah (Debian's buildah), as root or in
`buildah unshare`. `contrib/image/check.sh DIR` checks the image (CI runs both).

OPTIONS:
    --out DIR            Where the image and buildah's storage go  [default: TARGET/container-image]
    --binary FILE        Package this static dht-node instead of building one
    -h, --help           Print this help";

/// The unprivileged user and group the node runs as inside the image.
const UID: u32 = 10001;
const MUSL: &str = "x86_64-unknown-linux-musl";
const ENTRYPOINT: &str = r#"["/usr/local/bin/dht-node","--config","/etc/dht-node/dht-node.toml"]"#;
/// Mainline's DHT, `--http`, and `--overlay ipfs`'s libp2p (Kubo's port; the binary is
/// built with every feature).
const PORTS: [&str; 3] = ["4001/tcp", "6881/udp", "9181/tcp"];

pub fn run(args: &[String]) -> Result<(), Error> {
    let mut options = Options::new(args, "image ");
    let root = workspace_root();
    let target = target_dir(&root);
    let mut out_dir = target.join("container-image");
    let mut binary = None;
    while let Some((name, inline)) = options.next_name() {
        match name {
            "-h" | "--help" => {
                out!("{USAGE}");
                return Ok(());
            }
            "--out" => out_dir = PathBuf::from(options.value(name, inline)?),
            "--binary" => binary = Some(PathBuf::from(options.value(name, inline)?)),
            other => return Err(options.usage(format!("unknown option `{other}`"))),
        }
    }
    let binary = match binary {
        Some(path) => path,
        None => build_static(&root, &target)?,
    };
    check_static(&binary)?;
    let version = env!("CARGO_PKG_VERSION");
    assemble(&root, &binary, &out_dir, version)?;
    describe(&binary, &out_dir, version)
}

fn failed(message: String) -> Error {
    Error::Failed(format!("image: {message}"))
}

/// Runs `program` with `args`; its stdout when it succeeds.
fn capture(program: &str, args: &[&str]) -> Result<String, Error> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| failed(format!("cannot run {program}: {e}")))?;
    if !output.status.success() {
        return Err(failed(format!(
            "`{program} {}` failed ({})",
            args.join(" "),
            output.status
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Builds the static binary: dht-node, every feature, musl, the `image` profile.
fn build_static(root: &Path, target: &Path) -> Result<PathBuf, Error> {
    if on_path("rustup") {
        let installed = capture("rustup", &["target", "list", "--installed"])?;
        if !installed.lines().any(|l| l.trim() == MUSL) {
            eprintln!("image: rustup target add {MUSL}");
            capture("rustup", &["target", "add", MUSL])?;
        }
    }
    if !on_path("musl-gcc") {
        return Err(failed(
            "musl-gcc is missing (ring's C code is built with it): apt-get install musl-tools"
                .into(),
        ));
    }
    eprintln!("image: building dht-node --all-features for {MUSL} (profile image)");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "--profile",
            "image",
            "-p",
            "dht-node",
            "--all-features",
        ])
        .args(["--target", MUSL])
        .env("CARGO_TARGET_DIR", target)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| failed(format!("cannot run cargo: {e}")))?;
    if !status.success() {
        return Err(failed(format!("building dht-node for {MUSL} failed")));
    }
    Ok(target.join(MUSL).join("image").join("dht-node"))
}

/// Refuses a binary with a program interpreter (`PT_INTERP`): a dynamically linked
/// binary would not start in an empty root filesystem.
fn check_static(binary: &Path) -> Result<(), Error> {
    let bytes = fs::read(binary).map_err(|e| failed(format!("{}: {e}", binary.display())))?;
    match has_interpreter(&bytes) {
        Some(false) => Ok(()),
        Some(true) => Err(failed(format!(
            "{} is dynamically linked (it names a program interpreter)",
            binary.display()
        ))),
        None => Err(failed(format!(
            "{} is not a 64-bit little-endian ELF file",
            binary.display()
        ))),
    }
}

/// Whether a 64-bit little-endian ELF file has a `PT_INTERP` program header; `None` when
/// the bytes are not such a file.
fn has_interpreter(elf: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(elf.get(at..at + 8)?.try_into().ok()?));
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    for i in 0..phnum {
        let at = phoff.checked_add(i.checked_mul(phentsize)?)?;
        let kind = u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?);
        if kind == PT_INTERP {
            return Some(true);
        }
    }
    Some(false)
}

/// buildah with its storage under `out`: a vfs store of its own, so that building the
/// image touches nothing of the machine's containers.
fn buildah(out: &Path, args: &[&str]) -> Result<String, Error> {
    let root = out.join("storage");
    let runroot = out.join("run");
    let mut all = vec![
        "--root",
        root.to_str().unwrap_or_default(),
        "--runroot",
        runroot.to_str().unwrap_or_default(),
        "--storage-driver",
        "vfs",
    ];
    all.extend_from_slice(args);
    capture("buildah", &all)
}

fn path_str(path: &Path) -> Result<&str, Error> {
    path.to_str()
        .ok_or_else(|| failed(format!("{} is not UTF-8", path.display())))
}

/// The image: one layer from `scratch`, its config, an OCI layout and an OCI archive.
fn assemble(root: &Path, binary: &Path, out: &Path, version: &str) -> Result<(), Error> {
    if !on_path("buildah") {
        return Err(failed("buildah is missing: apt-get install buildah".into()));
    }
    // A fresh storage every time: the vfs copy of one small image costs nothing, and a
    // storage left by an interrupted run could otherwise hold a stale container.
    for stale in ["storage", "run", "oci", "stage"] {
        let _ = fs::remove_dir_all(out.join(stale));
    }
    let stage = out.join("stage");
    // Two trees copied into `/`, one per owner: a tree's top directories keep their
    // modes that way (copying a directory to a new path would create it 0755).
    let files = stage.join("root-owned");
    let user_owned = stage.join("user-owned");
    let data = user_owned.join("data");
    let io = |e: std::io::Error| failed(format!("staging under {}: {e}", stage.display()));
    // Modes are set here and kept by `buildah copy` (its --chmod would give directories
    // a file's mode too); owners are set by the copy.
    for (path, mode) in [
        ("usr/local/bin/dht-node", 0o755),
        ("etc/dht-node/dht-node.toml", 0o644),
    ] {
        let dest = files.join(path);
        for dir in dest
            .ancestors()
            .skip(1)
            .take_while(|d| d.starts_with(&files))
        {
            fs::create_dir_all(dir).map_err(io)?;
            fs::set_permissions(dir, Permissions::from_mode(0o755)).map_err(io)?;
        }
        let source = match path {
            "usr/local/bin/dht-node" => binary.to_path_buf(),
            _ => root.join("contrib/image/dht-node.toml"),
        };
        fs::copy(source, &dest).map_err(io)?;
        fs::set_permissions(&dest, Permissions::from_mode(mode)).map_err(io)?;
    }
    fs::create_dir_all(&data).map_err(io)?;
    fs::set_permissions(&data, Permissions::from_mode(0o700)).map_err(io)?;

    let user = format!("{UID}:{UID}");
    let ctr = buildah(out, &["from", "--name", "dht-node-image", "scratch"])?;
    let result = (|| {
        let copy = |owner: &str, source: &Path, dest: &str| {
            buildah(
                out,
                &[
                    "copy",
                    "--quiet",
                    "--chown",
                    owner,
                    &ctr,
                    path_str(source)?,
                    dest,
                ],
            )
        };
        copy("0:0", &files, "/")?;
        copy(&user, &user_owned, "/")?;
        let title = "org.opencontainers.image.title=dht-node";
        let licenses = "org.opencontainers.image.licenses=MIT OR Apache-2.0";
        let label_version = format!("org.opencontainers.image.version={version}");
        let mut config = vec![
            "config",
            "--user",
            &user,
            "--entrypoint",
            ENTRYPOINT,
            "--workingdir",
            "/",
            "--volume",
            "/data",
            "--stop-signal",
            "SIGTERM",
            "--os",
            "linux",
            "--arch",
            "amd64",
            "--label",
            title,
            "--label",
            licenses,
            "--label",
            &label_version,
        ];
        for port in PORTS {
            config.extend(["--port", port]);
        }
        config.push(&ctr);
        buildah(out, &config)?;
        let image = format!("localhost/dht-node:{version}");
        buildah(
            out,
            &[
                "commit",
                "--quiet",
                "--format",
                "oci",
                "--timestamp",
                "0",
                "--disable-compression=false",
                &ctr,
                &image,
            ],
        )?;
        let layout = format!("oci:{}:{version}", path_str(&out.join("oci"))?);
        buildah(out, &["push", "--quiet", &image, &layout])?;
        let archive = out.join(format!("dht-node-{version}.oci.tar"));
        let _ = fs::remove_file(&archive);
        let archive = format!("oci-archive:{}:dht-node:{version}", path_str(&archive)?);
        buildah(out, &["push", "--quiet", &image, &archive])?;
        Ok(())
    })();
    let _ = buildah(out, &["rm", &ctr]);
    result
}

/// One blob of the OCI layout, by its `sha256:...` digest.
fn blob(layout: &Path, digest: &str) -> PathBuf {
    let (algorithm, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
    layout.join("blobs").join(algorithm).join(hex)
}

fn read_json(path: &Path) -> Result<serde_json::Value, Error> {
    let text = fs::read(path).map_err(|e| failed(format!("{}: {e}", path.display())))?;
    serde_json::from_slice(&text).map_err(|e| failed(format!("{}: {e}", path.display())))
}

/// Prints the image's sizes and the listing of its layer.
fn describe(binary: &Path, out: &Path, version: &str) -> Result<(), Error> {
    let layout = out.join("oci");
    let index = read_json(&layout.join("index.json"))?;
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .ok_or_else(|| failed("the OCI index names no manifest".into()))?;
    let manifest = read_json(&blob(&layout, manifest_digest))?;
    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    let binary_size = fs::metadata(binary).map(|m| m.len()).unwrap_or(0);
    let layer_sizes: u64 = layers.iter().filter_map(|l| l["size"].as_u64()).sum();
    out!("image dht-node:{version}, manifest {manifest_digest}");
    out!(
        "  binary {:.1} MiB uncompressed; {} layer(s), {:.1} MiB compressed",
        mib(binary_size),
        layers.len(),
        mib(layer_sizes)
    );
    for layer in &layers {
        let digest = layer["digest"].as_str().unwrap_or_default();
        out!(
            "  layer {digest} ({} bytes, {})",
            layer["size"],
            layer["mediaType"].as_str().unwrap_or_default()
        );
        let listing = capture(
            "tar",
            &[
                "-tvzf",
                path_str(&blob(&layout, digest))?,
                "--numeric-owner",
            ],
        )?;
        for line in listing.lines() {
            out!("    {line}");
        }
    }
    out!("  OCI layout: {}", layout.display());
    out!(
        "  OCI archive: {}",
        out.join(format!("dht-node-{version}.oci.tar")).display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interpreter_is_found_and_a_static_header_is_not() {
        // A minimal ELF64 header with one program header at 64, of type `kind`.
        let elf = |kind: u32| {
            let mut b = vec![0u8; 64 + 56];
            b[..6].copy_from_slice(b"\x7fELF\x02\x01");
            b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
            b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
            b[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
            b[64..68].copy_from_slice(&kind.to_le_bytes());
            b
        };
        assert_eq!(has_interpreter(&elf(3)), Some(true));
        assert_eq!(has_interpreter(&elf(1)), Some(false));
        assert_eq!(has_interpreter(b"#!/bin/sh\n"), None);
        // A header whose program headers lie past the end is not read out of bounds.
        let mut truncated = elf(3);
        truncated.truncate(66);
        assert_eq!(has_interpreter(&truncated), None);
    }
}
