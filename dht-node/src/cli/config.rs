//! `--config FILE`: the node's flags from a TOML file, and `dht-node config
//! --print-default`.
//!
//! A key is a long flag's name (`listen`, `data-dir`; `data_dir` is accepted too) and
//! its value is what the flag takes: a string or number, `true` for a switch, an
//! array for a repeatable flag. The file becomes flags placed before the command
//! line's, and a flag given on the command line replaces the file's key, so flags
//! override the file. The key set is clap's own definition: a new flag is a new key,
//! and an unknown key is refused with its name.

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
    let bytes = dht_node::identity::read_bounded(Path::new(&path), MAX_CONFIG)
        .map_err(|e| Fail::usage(format!("--config {}: {e}", path.to_string_lossy())))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Fail::usage(format!("--config {}: not UTF-8", path.to_string_lossy())))?;
    let from_file = flags_of(&text)
        .map_err(|e| Fail::usage(format!("--config {}: {e}", path.to_string_lossy())))?;
    let given: Vec<String> = args
        .iter()
        .filter_map(|a| a.to_str()?.strip_prefix("--"))
        .map(|a| a.split('=').next().unwrap_or(a).to_string())
        .collect();
    let mut out = vec![args[0].clone()];
    for (flag, values) in from_file {
        if given.contains(&flag)
            || (flag == "bootstrap" && given.iter().any(|g| g == "no-bootstrap"))
        {
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
    let mut out = Vec::new();
    for (key, value) in table {
        let name = key.replace('_', "-");
        let arg = cmd
            .get_arguments()
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
