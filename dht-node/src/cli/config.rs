//! `--config FILE`: the node's flags from a TOML file, and `dht-node config
//! --print-default`.
//!
//! A key is a long flag's name (`listen`, `data-dir`; `data_dir` is accepted too) and
//! its value is what the flag takes: a string or number, `true` for a switch, an
//! array for a repeatable flag. The file becomes flags placed before the command
//! line's, and a flag given on the command line replaces the file's key, or leaves
//! out a key it conflicts with (`--bootstrap` drops `no-bootstrap`, `--overlay
//! chord` drops `store = "sled"`), so flags override the file. The key set is
//! clap's own definition: a new flag is a new key, and an unknown key is refused with
//! its name. Only a regular file is read: a FIFO would block the start.

use std::ffi::OsString;
use std::path::Path;

use clap::CommandFactory;

use super::{Cli, Fail};

/// Config files are short: anything bigger is not one.
const MAX_CONFIG: usize = 64 * 1024;

/// Flags that make no sense in a file (they are about this one invocation).
const NOT_IN_FILE: &[&str] = &["help", "version", "config", "json"];

/// The command line with `--config FILE`'s keys turned into flags in front of it.
pub(crate) fn expand(args: Vec<OsString>) -> Result<Vec<OsString>, Fail> {
    let Some(path) = config_path(&args) else {
        return Ok(args);
    };
    let bytes = read_regular_file(Path::new(&path), MAX_CONFIG)
        .map_err(|e| Fail::usage(format!("--config {}: {e}", path.to_string_lossy())))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Fail::usage(format!("--config {}: not UTF-8", path.to_string_lossy())))?;
    let from_file = flags_of(&text)
        .map_err(|e| Fail::usage(format!("--config {}: {e}", path.to_string_lossy())))?;
    let cmd = Cli::command();
    let given = given_flags(&cmd, &args);
    let mut out = vec![args[0].clone()];
    for (flag, values) in from_file {
        // The command line wins: a key it gives again, or one it conflicts with, is
        // left out (`no-bootstrap` against `--bootstrap`, `overlay = "chord"` against
        // `--store sled`, ...), so that no file key ever refuses a command line.
        let overridden = given.iter().any(|(g, g_value)| {
            *g == flag
                || values
                    .iter()
                    .any(|v| conflict(&cmd, (&flag, v.as_deref()), (g, g_value.as_deref())))
        });
        if overridden {
            continue;
        }
        for v in values {
            out.push(format!("--{flag}").into());
            if let Some(v) = v {
                out.push(v.into());
            }
        }
    }
    out.extend(args.into_iter().skip(1));
    Ok(out)
}

/// The long flags of the command line, each with its value when it takes one.
fn given_flags(cmd: &clap::Command, args: &[OsString]) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut it = args.iter().skip(1).filter_map(|a| a.to_str());
    while let Some(a) = it.next() {
        let Some(flag) = a.strip_prefix("--") else {
            continue;
        };
        if flag.is_empty() {
            break; // `--`: only positional values follow.
        }
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => {
                let takes_value = cmd
                    .get_arguments()
                    .any(|x| x.get_long() == Some(flag) && x.get_action().takes_values());
                (
                    flag,
                    if takes_value {
                        it.next().map(str::to_string)
                    } else {
                        None
                    },
                )
            }
        };
        out.push((name.to_string(), value));
    }
    out
}

/// Whether two flags, each with its value, cannot be given together: clap's
/// `conflicts_with` (either way round), and `--overlay chord` with the flags of what
/// Chord has not (`chord.rs` refuses them).
fn conflict(cmd: &clap::Command, a: (&str, Option<&str>), b: (&str, Option<&str>)) -> bool {
    let declared = |x: &str, y: &str| {
        cmd.get_arguments()
            .find(|arg| arg.get_long() == Some(x))
            .is_some_and(|arg| {
                cmd.get_arg_conflicts_with(arg)
                    .iter()
                    .any(|c| c.get_long() == Some(y))
            })
    };
    let chord = |(x, v): (&str, Option<&str>)| x == "overlay" && v == Some("chord");
    declared(a.0, b.0)
        || declared(b.0, a.0)
        || (chord(a) && mainline_only(b))
        || (chord(b) && mainline_only(a))
}

/// A flag, with its value, that configures what a Chord node has not.
fn mainline_only((flag, value): (&str, Option<&str>)) -> bool {
    match flag {
        "transport" => value != Some("udp"),
        "store" => value != Some("mem"),
        _ => MAINLINE_ONLY.contains(&flag),
    }
}

/// The flags `chord.rs` refuses whatever their value (`--transport` and `--store`
/// only with a value other than their default).
const MAINLINE_ONLY: &[&str] = &[
    "data-dir",
    "read-only",
    "handover",
    "no-local-exemption",
    "http-token-file",
    "routing-file",
    "maintenance-ms",
    "questionable-after-ms",
    "item-ttl-ms",
    "peer-ttl-ms",
];

/// Reads a small regular file whole (see [`dht_node::identity::read_bounded`]).
/// Anything else is refused before it is opened: opening a FIFO for reading blocks
/// until a writer comes, and a device never ends.
pub(crate) fn read_regular_file(path: &Path, max: usize) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".to_string());
    }
    dht_node::identity::read_bounded(path, max).map_err(|e| e.to_string())
}

fn config_path(args: &[OsString]) -> Option<OsString> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let s = a.to_str().unwrap_or("");
        if s == "--config" {
            return it.next().cloned();
        }
        if let Some(p) = s.strip_prefix("--config=") {
            return Some(p.into());
        }
    }
    None
}

/// A flag from the file: its name and its values (`None` for a switch).
type FileFlag = (String, Vec<Option<String>>);

/// The flags of a config file.
fn flags_of(text: &str) -> Result<Vec<FileFlag>, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    let cmd = Cli::command();
    // `--overlay ipfs`'s own flags (`mode`, `announce`, `key`, `provide`) are keys too.
    #[cfg(feature = "ipfs")]
    let ipfs = <super::ipfs::IpfsCli as CommandFactory>::command();
    #[cfg(not(feature = "ipfs"))]
    let ipfs = clap::Command::new("ipfs");
    let mut out = Vec::new();
    for (key, value) in table {
        let name = key.replace('_', "-");
        let arg = cmd
            .get_arguments()
            .chain(ipfs.get_arguments())
            .find(|a| a.get_long() == Some(name.as_str()) && !NOT_IN_FILE.contains(&name.as_str()))
            .ok_or_else(|| format!("unknown key `{key}`"))?;
        let switch = !arg.get_action().takes_values();
        let scalar = |v: &toml::Value| -> Result<String, String> {
            match v {
                toml::Value::String(s) => Ok(s.clone()),
                toml::Value::Integer(i) => Ok(i.to_string()),
                toml::Value::Float(f) => Ok(f.to_string()),
                other => Err(format!(
                    "key `{key}`: expected a string or a number, got {other}"
                )),
            }
        };
        let values = match (&value, switch) {
            (toml::Value::Boolean(true), true) => vec![None],
            (toml::Value::Boolean(false), true) => vec![],
            (_, true) => return Err(format!("key `{key}`: expected true or false")),
            (toml::Value::Array(items), false) => items
                .iter()
                .map(|v| scalar(v).map(Some))
                .collect::<Result<_, _>>()?,
            (v, false) => vec![Some(scalar(v)?)],
        };
        out.push((name, values));
    }
    Ok(out)
}

/// `dht-node config --print-default`: every key, commented out at its default.
pub(crate) fn print_default() {
    let cmd = Cli::command();
    let mut text = String::from(
        "# dht-node configuration (dht-node --config FILE). Flags on the command line\n\
         # override these keys. Uncomment a line to change it.\n",
    );
    for arg in cmd.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if NOT_IN_FILE.contains(&long) {
            continue;
        }
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        text.push('\n');
        for line in help.lines() {
            text.push_str(&format!("# {line}\n"));
        }
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let value = if !arg.get_action().takes_values() {
            "false".to_string()
        } else if let Some(d) = defaults.first() {
            match d.parse::<i64>() {
                Ok(n) => n.to_string(),
                Err(_) => format!("{d:?}"),
            }
        } else if matches!(arg.get_action(), clap::ArgAction::Append) {
            "[]".to_string()
        } else {
            "\"\"  # unset by default".to_string()
        };
        text.push_str(&format!("# {long} = {value}\n"));
    }
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}
