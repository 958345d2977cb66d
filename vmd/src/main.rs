//! The `vmd` binary: parse flags, set up logging, run the daemon.

use std::process::ExitCode;

use clap::Parser;
use vmd::config::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(err) = vmd::telemetry::init(args.log_format, args.log_level.as_deref()) {
        eprintln!("vmd: cannot set up logging: {err:#}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("vmd: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(vmd::daemon::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "vmd failed");
            eprintln!("vmd: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
