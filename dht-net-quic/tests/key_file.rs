//! The node key file: created once, read back unchanged, never replaced when bad.

use std::path::PathBuf;

use dht_net_quic::load_or_generate_key;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dht-net-quic-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_key_is_generated_once_and_kept() {
    let dir = scratch("keep");
    let path = dir.join("node.key");
    let first = load_or_generate_key(&path).unwrap();
    let again = load_or_generate_key(&path).unwrap();
    assert_eq!(first.to_bytes(), again.to_bytes());
    assert_eq!(std::fs::read(&path).unwrap().len(), 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "key readable by others: {mode:o}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_damaged_key_file_is_an_error_and_left_alone() {
    let dir = scratch("bad");
    let path = dir.join("node.key");
    std::fs::write(&path, b"short").unwrap();
    let err = load_or_generate_key(&path).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert_eq!(std::fs::read(&path).unwrap(), b"short");
    let _ = std::fs::remove_dir_all(&dir);
}
