//! Parsers of argument values the verbs check themselves, so that a bad value exits 6
//! (invalid argument) rather than 2: durations (`--ttl`, `extend`), quota limits
//! (`user set --max-*`) and the `[ADDR:]HOSTPORT` of `port add`.
//!
//! Durations are humantime forms (`2h`, `90m`, `1h30m`, `3600s`, `30d`) or a bare number of
//! seconds. Limits are a number (a size for memory and disk), `default` or `unlimited`.

use std::net::Ipv4Addr;
use std::time::Duration;

use vm_proto::names::parse_size;
use vm_proto::types::{LimitUpdate, LimitWord};

use crate::error::CliError;

/// Bytes in a MiB.
const MIB: u64 = 1 << 20;

/// What a limit counts, which decides how its number is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitUnit {
    /// A plain count (VMs, vCPUs).
    Count,
    /// Memory: a size, sent in whole MiB.
    MemoryMib,
    /// Disk: a size, sent in bytes.
    DiskBytes,
}

/// A duration in whole seconds, more than zero.
pub fn parse_duration_secs(text: &str) -> Result<u64, CliError> {
    let text = text.trim();
    let secs = match text.parse::<u64>() {
        Ok(secs) => Some(secs),
        Err(_) => humantime::parse_duration(text).ok().map(whole_secs),
    };
    match secs {
        Some(secs) if secs > 0 => Ok(secs),
        _ => Err(CliError::invalid(format!(
            "invalid duration {text:?}: use e.g. 2h, 90m, 1h30m, 3600s or a number of seconds"
        ))),
    }
}

/// Seconds of `d`, a started second counting as one.
fn whole_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// A `--max-*` value of unit `unit`; `flag` names it in errors.
pub fn parse_limit(flag: &str, unit: LimitUnit, text: &str) -> Result<LimitUpdate, CliError> {
    match text.trim() {
        "default" => return Ok(LimitUpdate::Word(LimitWord::Default)),
        "unlimited" => return Ok(LimitUpdate::Word(LimitWord::Unlimited)),
        _ => {}
    }
    let value = match unit {
        LimitUnit::Count => text
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("invalid {flag} {text:?}: use a number, default or unlimited")),
        LimitUnit::MemoryMib => memory_mib(text),
        LimitUnit::DiskBytes => parse_size(text).map_err(|err| format!("invalid {flag}: {err}")),
    };
    value.map(LimitUpdate::Value).map_err(CliError::invalid)
}

/// A memory size in whole MiB (`0` allowed: a limit of nothing).
fn memory_mib(text: &str) -> Result<u64, String> {
    let bytes = parse_size(text).map_err(|err| format!("invalid --max-memory: {err}"))?;
    if bytes % MIB != 0 {
        return Err(format!(
            "invalid --max-memory {text:?}: not a whole number of MiB; use e.g. 8G or 512M"
        ));
    }
    Ok(bytes / MIB)
}

/// A port from 1 to 65535; `what` names it in errors.
pub fn parse_port(what: &str, text: &str) -> Result<u16, CliError> {
    text.parse::<u16>()
        .ok()
        .filter(|port| *port > 0)
        .ok_or_else(|| CliError::invalid(format!("invalid {what} {text:?}: use 1 to 65535")))
}

/// `[ADDR:]PORT`: an optional IPv4 address to listen on (`None`: the daemon's default,
/// 127.0.0.1) and a host port.
pub fn parse_host_port(text: &str) -> Result<(Option<String>, u16), CliError> {
    let Some((addr, port)) = text.rsplit_once(':') else {
        return Ok((None, parse_port("host port", text)?));
    };
    let addr: Ipv4Addr = addr.parse().map_err(|_| {
        CliError::invalid(format!(
            "invalid host address {addr:?} in {text:?}: use [IPV4:]PORT, e.g. 8080 or 127.0.0.1:8080"
        ))
    })?;
    Ok((Some(addr.to_string()), parse_port("host port", port)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_humantime_forms_and_seconds() {
        let cases = [
            ("2h", 7200),
            ("90m", 5400),
            ("1h30m", 5400),
            ("1h 30m", 5400),
            ("3600s", 3600),
            ("3600", 3600),
            ("30d", 30 * 86_400),
            ("1500ms", 2),
            ("1.5h", 5400),
        ];
        for (text, secs) in cases {
            assert_eq!(parse_duration_secs(text).expect(text), secs, "{text}");
        }
        for bad in ["", "0", "0s", "-5", "2 hours later", "h", "1 fortnight"] {
            let err = parse_duration_secs(bad).expect_err(bad);
            assert_eq!(err.exit_code(), 6, "{bad}");
        }
    }

    #[test]
    fn limits_take_numbers_sizes_and_words() {
        use LimitUnit::*;
        let ok = |unit, text| parse_limit("--max-x", unit, text).expect(text);
        assert_eq!(ok(Count, "5"), LimitUpdate::Value(5));
        assert_eq!(ok(Count, "0"), LimitUpdate::Value(0));
        assert_eq!(ok(Count, "default"), LimitUpdate::Word(LimitWord::Default));
        assert_eq!(
            ok(DiskBytes, "unlimited"),
            LimitUpdate::Word(LimitWord::Unlimited)
        );
        assert_eq!(ok(MemoryMib, "8G"), LimitUpdate::Value(8192));
        assert_eq!(ok(MemoryMib, "512M"), LimitUpdate::Value(512));
        assert_eq!(ok(DiskBytes, "100G"), LimitUpdate::Value(100 << 30));
        for (unit, bad) in [
            (Count, "lots"),
            (Count, "2G"),
            (Count, "-1"),
            (MemoryMib, "1000K"),
            (MemoryMib, "big"),
            (DiskBytes, "2X"),
            (Count, "Unlimited"),
        ] {
            let err = parse_limit("--max-x", unit, bad).expect_err(bad);
            assert_eq!(err.exit_code(), 6, "{bad}");
        }
    }

    #[test]
    fn host_ports_take_an_optional_ipv4_address() {
        assert_eq!(parse_host_port("8080").expect("port"), (None, 8080));
        assert_eq!(
            parse_host_port("127.0.0.1:8080").expect("addr"),
            (Some("127.0.0.1".to_string()), 8080)
        );
        assert_eq!(
            parse_host_port("0.0.0.0:53").expect("any"),
            (Some("0.0.0.0".to_string()), 53)
        );
        for bad in [
            "",
            "0",
            "65536",
            "http",
            ":80",
            "localhost:80",
            "::1:80",
            "[::1]:80",
            "10.0.0.1:",
            "10.0.0.1:0",
            "10.0.0.1:x",
            "-1",
        ] {
            let err = parse_host_port(bad).expect_err(bad);
            assert_eq!(err.exit_code(), 6, "{bad}");
        }
        let err = parse_host_port("localhost:80").expect_err("name");
        assert!(err.to_string().contains("127.0.0.1:8080"), "{err}");
        assert_eq!(parse_port("guest port", "22").expect("22"), 22);
    }
}
