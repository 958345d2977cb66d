//! Installs the tracing subscriber: text on a terminal, JSON on request, journald under systemd.
//! Policy (docs/logging.md): `info` is for operator-visible state changes only.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// jsonrpsee's server warns once per unreadable request body, which any client can cause at
/// will: it is held to errors unless the filter names jsonrpsee itself. vmd logs what matters
/// of those requests (at debug) on its own.
fn quiet_library(filter: &str) -> String {
    match filter.contains("jsonrpsee") {
        true => filter.to_string(),
        false => format!("{filter},jsonrpsee-server=error"),
    }
}

/// Sets up logging once for the process.
pub fn init(format: LogFormat, level: Option<&str>) -> anyhow::Result<()> {
    let wanted = match level {
        Some(l) => l.to_string(),
        None => std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
    };
    let filter = EnvFilter::try_new(quiet_library(&wanted))?;
    let format = match format {
        LogFormat::Auto if std::env::var_os("JOURNAL_STREAM").is_some() => LogFormat::Journald,
        LogFormat::Auto => LogFormat::Text,
        other => other,
    };
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init()?,
        LogFormat::Journald => registry.with(tracing_journald::layer()?).try_init()?,
        _ => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_ansi(ansi)
                        .with_writer(std::io::stderr),
                )
                .try_init()?
        }
    }
    Ok(())
}
