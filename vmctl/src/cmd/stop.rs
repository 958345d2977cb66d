//! `vmctl stop NAME [--force] [--timeout SECS]`: stops a VM (`vm.stop`).
//!
//! The daemon sends an ACPI power-down, waits up to the timeout (30 s by default), then ends
//! QEMU; `--force` ends it at once. The call returns once no process remains.
//!
//! While a graceful stop waits, vmctl follows the VM's events (`events.subscribe`, opened
//! before the call so none slips past) and says on stderr what it waits for:
//! `waiting for the guest to power off, forcing in 25 s` when the power button is pressed
//! (`powerdown_sent`) and every few seconds after, then `powered off after 3.2 s` or
//! `forced off after 30.1 s`. `-q` and `--output json` print none of it.

use std::time::{Duration, Instant};

use jsonrpsee::ws_client::WsClient;
use vm_proto::api::VmdApiClient;
use vm_proto::types::{Event, EventKind, Vm, VmStop};

use super::Ctx;
use crate::cli::StopArgs;
use crate::error::CliError;
use crate::output;

/// How often the wait is reported again.
const UPDATE: Duration = Duration::from_secs(5);

/// Stops the VM and prints it (nothing with `-q`).
pub async fn run(ctx: &Ctx, args: StopArgs) -> Result<(), CliError> {
    let request = VmStop {
        name: args.name,
        force: args.force,
        timeout_secs: args.timeout,
    };
    let client = ctx.connect().await?;
    let vm = if request.force || ctx.out.quiet || ctx.out.is_json() {
        client.vm_stop(request).await?
    } else {
        with_progress(&client, request).await?
    };
    ctx.out.result(&vm, output::vm::details)
}

/// `vm.stop`, reporting its steps on stderr as the VM's events arrive.
async fn with_progress(client: &WsClient, request: VmStop) -> Result<Vm, CliError> {
    let mut progress = Progress::new(&request);
    // Without a subscription the stop goes on, silently.
    let events = client.events_subscribe(None).await.ok();
    let stop = client.vm_stop(request);
    tokio::pin!(stop);
    let Some(mut events) = events else {
        return Ok(stop.await?);
    };
    let mut tick = tokio::time::interval_at((Instant::now() + UPDATE).into(), UPDATE);
    loop {
        tokio::select! {
            done = &mut stop => {
                let vm = done?;
                progress.finish();
                return Ok(vm);
            }
            Some(Ok(event)) = events.next() => progress.event(&event),
            _ = tick.tick() => progress.waiting(),
        }
    }
}

/// What vmctl knows of a graceful stop.
struct Progress {
    /// The VM.
    name: String,
    /// `--timeout`, if given.
    timeout: Option<u64>,
    /// When the call was made.
    started: Instant,
    /// Once the power button was pressed: when the daemon forces the stop, if known.
    deadline: Option<Option<Instant>>,
    /// Whether the daemon gave up waiting and forced the stop.
    forced: bool,
}

impl Progress {
    fn new(request: &VmStop) -> Progress {
        Progress {
            name: request.name.clone(),
            timeout: request.timeout_secs,
            started: Instant::now(),
            deadline: None,
            forced: false,
        }
    }

    /// Takes in one event (other VMs' are ignored).
    fn event(&mut self, event: &Event) {
        if event.vm.as_deref() != Some(self.name.as_str()) {
            return;
        }
        match event.kind {
            EventKind::PowerdownSent => {
                let secs = self.timeout.or_else(|| forcing_in(&event.message));
                self.deadline = Some(secs.map(|s| Instant::now() + Duration::from_secs(s)));
                self.waiting();
            }
            EventKind::StopForced => {
                self.forced = true;
                eprintln!("the guest did not power off in time; forcing it off");
            }
            _ => {}
        }
    }

    /// Says what the stop waits for, while it waits for the guest.
    fn waiting(&self) {
        let Some(deadline) = self.deadline.filter(|_| !self.forced) else {
            return;
        };
        match deadline.map(|d| d.saturating_duration_since(Instant::now())) {
            Some(left) if left.is_zero() => {}
            Some(left) => eprintln!(
                "waiting for the guest to power off, forcing in {} s",
                left.as_secs_f64().ceil() as u64
            ),
            None => eprintln!("waiting for the guest to power off"),
        }
    }

    /// Says how the stop ended, if it pressed the power button.
    fn finish(&self) {
        if self.deadline.is_none() {
            return;
        }
        let secs = self.started.elapsed().as_secs_f64();
        match self.forced {
            true => eprintln!("forced off after {secs:.1} s"),
            false => eprintln!("powered off after {secs:.1} s"),
        }
    }
}

/// The timeout a `powerdown_sent` message announces (`… forcing in 30 s`).
fn forcing_in(message: &str) -> Option<u64> {
    let (_, rest) = message.rsplit_once("forcing in ")?;
    rest.strip_suffix(" s")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_is_read_from_the_event() {
        assert_eq!(
            forcing_in("ACPI power-down sent; forcing in 30 s"),
            Some(30)
        );
        assert_eq!(forcing_in("ACPI power-down sent"), None);
        assert_eq!(forcing_in("forcing in soon s"), None);
    }
}
