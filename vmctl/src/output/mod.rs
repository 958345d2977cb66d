//! Printing results: tables for people, or exactly one JSON document on stdout for scripts.
//!
//! In JSON mode stdout gets the API result unchanged (the `vm_proto` types as serde writes
//! them; arrays for lists) and `-q` changes nothing. In table mode `-q` prints names only for
//! lists and suppresses confirmations and the results of `create` and `image import`.
//! The renderers per resource live in [`vm`] (with [`vm_guest`] and [`vm_net`]), [`image`],
//! [`iso`], [`network`], [`template`], [`system`], [`user`] and [`token`]; [`stream`]
//! writes what arrives over time (logs, events, console output); [`progress`] draws upload
//! progress on stderr.

pub mod image;
pub mod iso;
pub mod network;
pub mod progress;
pub mod stream;
pub mod system;
pub mod template;
pub mod token;
pub mod user;
pub mod vm;
pub mod vm_guest;
pub mod vm_net;

use std::io::Write;
use std::time::SystemTime;

use serde::Serialize;
use tabled::builder::Builder;
use tabled::settings::{Padding, Style};

use crate::cli::Format;
use crate::error::CliError;

/// Where and how results are printed.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// `--output`.
    pub format: Format,
    /// `-q`.
    pub quiet: bool,
}

impl Output {
    /// Whether `--output json` was given.
    pub fn is_json(&self) -> bool {
        self.format == Format::Json
    }

    /// Prints an object the user asked to see (show, status): JSON or its table.
    pub fn object<T: Serialize>(
        &self,
        value: &T,
        table: impl FnOnce(&T) -> String,
    ) -> Result<(), CliError> {
        match self.format {
            Format::Json => emit(&to_json(value)?),
            Format::Table => emit(&table(value)),
        }
    }

    /// Prints the result of a change (create, import): like [`Output::object`], nothing with `-q`.
    pub fn result<T: Serialize>(
        &self,
        value: &T,
        table: impl FnOnce(&T) -> String,
    ) -> Result<(), CliError> {
        if self.quiet && !self.is_json() {
            return Ok(());
        }
        self.object(value, table)
    }

    /// Prints a list: a JSON array, names one per line with `-q`, or a table.
    pub fn list<T: Serialize>(
        &self,
        items: &[T],
        name: impl Fn(&T) -> &str,
        table: impl FnOnce(&[T]) -> String,
    ) -> Result<(), CliError> {
        match (self.format, self.quiet) {
            (Format::Json, _) => emit(&to_json(&items)?),
            (Format::Table, true) => items.iter().try_for_each(|item| emit(name(item))),
            (Format::Table, false) => emit(&table(items)),
        }
    }

    /// Confirms an action in table mode ("wiped vm web1"); prints `value` in JSON mode.
    pub fn done<T: Serialize>(&self, value: &T, message: &str) -> Result<(), CliError> {
        match (self.format, self.quiet) {
            (Format::Json, _) => emit(&to_json(value)?),
            (Format::Table, true) => Ok(()),
            (Format::Table, false) => emit(message),
        }
    }

    /// Confirms a removal: `removed vm web1`, or `{"removed": "web1", "kind": "vm"}`.
    pub fn removed(&self, kind: &str, name: &str) -> Result<(), CliError> {
        let value = Removed {
            removed: name,
            kind,
        };
        self.done(&value, &format!("removed {kind} {name}"))
    }

    /// The JSON confirmation of several removals: an array of [`Output::removed`]'s objects.
    /// Prints nothing in table mode, where each removal was confirmed as it happened.
    pub fn removed_all(&self, kind: &str, names: &[String]) -> Result<(), CliError> {
        if !self.is_json() {
            return Ok(());
        }
        let values: Vec<_> = names
            .iter()
            .map(|name| Removed {
                removed: name,
                kind,
            })
            .collect();
        emit(&to_json(&values)?)
    }
}

/// The JSON confirmation of a removal.
#[derive(Serialize)]
struct Removed<'a> {
    removed: &'a str,
    kind: &'a str,
}

/// Writes `text` and a newline to stdout. A closed pipe (`vmctl ls | head -1`) is not an error.
pub fn emit(text: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::Io {
            context: "cannot write to stdout".to_string(),
            source: err,
        }),
        _ => Ok(()),
    }
}

/// Pretty JSON of an API value.
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String, CliError> {
    serde_json::to_string_pretty(value)
        .map_err(|err| CliError::Protocol(format!("cannot encode the result as JSON: {err}")))
}

/// A borderless table with a header row, like `docker ps`.
pub fn list_table(headers: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut builder = Builder::new();
    builder.push_record(headers.iter().copied());
    rows.into_iter().for_each(|row| builder.push_record(row));
    plain(builder)
}

/// A borderless two-column table of `key  value` lines.
pub fn kv_table(rows: &[(&str, String)]) -> String {
    let mut builder = Builder::new();
    for (key, value) in rows {
        builder.push_record([key.to_string(), value.clone()]);
    }
    plain(builder)
}

/// Renders without borders: columns separated by three spaces, no trailing blanks.
fn plain(builder: Builder) -> String {
    let mut table = builder.build();
    table.with(Style::empty()).with(Padding::new(0, 3, 0, 0));
    let text = table.to_string();
    text.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A size with its exact byte count: `256 MiB (268435456 bytes)`.
pub fn size_exact(bytes: u64) -> String {
    format!("{} ({bytes} bytes)", vm_proto::names::format_size(bytes))
}

/// Names joined by `, ` (`web1, web2`), or `-` when there are none.
pub fn names(names: &[String]) -> String {
    if names.is_empty() {
        "-".to_string()
    } else {
        names.join(", ")
    }
}

/// An account name with its local uid when it has one: `ann (uid 1000)`.
pub fn owner(name: &str, uid: Option<u32>) -> String {
    match uid {
        Some(uid) => format!("{name} (uid {uid})"),
        None => name.to_string(),
    }
}

/// `yes` or `no`.
pub fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}

/// An optional time with what is left of it: `-`, `2024-05-01T14:00:00Z (in 1h 59m)` or
/// `… (expired)`.
pub fn expiry(timestamp: Option<&str>) -> String {
    match timestamp {
        None => "-".to_string(),
        Some(at) => match remaining(at, SystemTime::now()) {
            Some(left) => format!("{at} ({left})"),
            None => at.to_string(),
        },
    }
}

/// What is left of an optional time, short: `-`, `in 1h 59m`, `in 3d 4h`, `expired`.
pub fn expiry_short(timestamp: Option<&str>) -> String {
    match timestamp {
        None => "-".to_string(),
        Some(at) => remaining(at, SystemTime::now()).unwrap_or_else(|| at.to_string()),
    }
}

/// How long after `now` the RFC 3339 time `timestamp` is, in its two largest units
/// (`in 1h 59m`), or `expired` once it has passed; `None` when it does not parse.
fn remaining(timestamp: &str, now: SystemTime) -> Option<String> {
    let then = humantime::parse_rfc3339_weak(timestamp).ok()?;
    let Ok(left) = then.duration_since(now) else {
        return Some("expired".to_string());
    };
    let secs = left.as_secs();
    let text = match secs {
        0 => return Some("expired".to_string()),
        1..60 => format!("{secs}s"),
        60..3600 => format!("{}m {}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {}h", secs / 86_400, secs % 86_400 / 3600),
    };
    Some(format!(
        "in {}",
        text.trim_end_matches(" 0s")
            .trim_end_matches(" 0m")
            .trim_end_matches(" 0h")
    ))
}

/// A creation time with its age: `2024-05-01T12:00:00Z (3h ago)`.
pub fn created(timestamp: &str) -> String {
    match age(timestamp, SystemTime::now()) {
        Some(age) => format!("{timestamp} ({age})"),
        None => timestamp.to_string(),
    }
}

/// The age of an RFC 3339 time in its largest unit (`45s ago`, `3h ago`, `12d ago`), or the
/// timestamp itself when it does not parse.
pub fn created_short(timestamp: &str) -> String {
    age(timestamp, SystemTime::now()).unwrap_or_else(|| timestamp.to_string())
}

/// How long before `now` the RFC 3339 time `timestamp` was.
fn age(timestamp: &str, now: SystemTime) -> Option<String> {
    let then = humantime::parse_rfc3339_weak(timestamp).ok()?;
    let secs = now.duration_since(then).map(|d| d.as_secs()).unwrap_or(0);
    let (value, unit) = match secs {
        0..60 => (secs, "s"),
        60..3600 => (secs / 60, "m"),
        3600..86_400 => (secs / 3600, "h"),
        _ => (secs / 86_400, "d"),
    };
    Some(format!("{value}{unit} ago"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ages_use_the_largest_unit() {
        let then = humantime::parse_rfc3339("2024-05-01T12:00:00Z").expect("time");
        let at = |secs| age("2024-05-01T12:00:00Z", then + Duration::from_secs(secs));
        assert_eq!(at(5).as_deref(), Some("5s ago"));
        assert_eq!(at(150).as_deref(), Some("2m ago"));
        assert_eq!(at(3 * 3600 + 5).as_deref(), Some("3h ago"));
        assert_eq!(at(40 * 86_400).as_deref(), Some("40d ago"));
        assert_eq!(age("yesterday", then), None);
        assert_eq!(created_short("yesterday"), "yesterday");
    }

    #[test]
    fn remaining_time_uses_two_units_then_expired() {
        let at = "2024-05-01T12:00:00Z";
        let then = humantime::parse_rfc3339(at).expect("time");
        let before = |secs| remaining(at, then - Duration::from_secs(secs));
        assert_eq!(before(2 * 3600 - 60).as_deref(), Some("in 1h 59m"));
        assert_eq!(before(2 * 3600).as_deref(), Some("in 2h"));
        assert_eq!(before(90).as_deref(), Some("in 1m 30s"));
        assert_eq!(before(45).as_deref(), Some("in 45s"));
        assert_eq!(
            before(3 * 86_400 + 4 * 3600 + 5).as_deref(),
            Some("in 3d 4h")
        );
        assert_eq!(remaining(at, then).as_deref(), Some("expired"));
        assert_eq!(
            remaining(at, then + Duration::from_secs(5)).as_deref(),
            Some("expired")
        );
        assert_eq!(remaining("soon", then), None);
        assert_eq!(expiry_short(None), "-");
        assert_eq!(
            expiry(Some("2000-01-01T00:00:00Z")),
            "2000-01-01T00:00:00Z (expired)"
        );
    }

    #[test]
    fn owners_show_their_uid_when_linked() {
        assert_eq!(owner("ann", Some(1000)), "ann (uid 1000)");
        assert_eq!(owner("ci", None), "ci");
    }

    #[test]
    fn removal_json_is_removed_then_kind() {
        let json = serde_json::to_string(&Removed {
            removed: "web1",
            kind: "vm",
        })
        .expect("json");
        assert_eq!(json, r#"{"removed":"web1","kind":"vm"}"#);
    }

    #[test]
    fn tables_are_aligned_without_trailing_blanks() {
        let text = list_table(&["NAME", "STATE"], [vec!["web1".into(), "stopped".into()]]);
        assert_eq!(text, "NAME   STATE\nweb1   stopped");
        let text = kv_table(&[("name", "web1".into()), ("cpus", "2".into())]);
        assert_eq!(text, "name   web1\ncpus   2");
    }
}
