//! Progress on stderr while a file is uploaded and the daemon works on it: drawn only on a
//! terminal and without `-q`, hidden (but still usable) otherwise.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Whether progress may be drawn: stderr is a terminal and `-q` was not given.
fn show_progress(quiet: bool) -> bool {
    !quiet && std::io::IsTerminal::is_terminal(&std::io::stderr())
}

/// A byte progress bar (bytes, rate, ETA) on stderr, or a hidden one.
pub fn bytes_bar(len: u64, quiet: bool) -> ProgressBar {
    if !show_progress(quiet) {
        return ProgressBar::hidden();
    }
    let template = "{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}";
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// A spinner with `message` on stderr while the daemon works, or a hidden one.
pub fn spinner(message: String, quiet: bool) -> ProgressBar {
    if !show_progress(quiet) {
        return ProgressBar::hidden();
    }
    let spinner = ProgressBar::new_spinner().with_message(message);
    spinner.enable_steady_tick(Duration::from_millis(120));
    spinner
}
