//! `GET /v1/vms/<name>/vnc` with `Upgrade: vmd-vnc`: after `101 Switching Protocols` the
//! connection carries QEMU's RFB (VNC) stream of the VM. QEMU's VNC server listens only on a
//! Unix socket in the VM's private run directory, so this authorized relay is the one way in:
//! no TCP VNC port exists. Several clients may view a VM at once; a client that sends nothing
//! for `console_idle_secs` is detached (a live viewer keeps asking for screen updates).

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use jsonrpsee::server::{HttpRequest, HttpResponse};
use vm_proto::VNC_UPGRADE;

use super::upgrade::{self, Endpoint};
use super::Identity;
use crate::manager::Manager;
use vm_proto::types::ConsoleKind;

/// The VM name if `path` is a vnc path.
pub fn vm_of(path: &str) -> Option<&str> {
    upgrade::vm_of(path, "vnc")
}

/// The VNC endpoint.
const VNC: Endpoint = Endpoint {
    protocol: VNC_UPGRADE,
    what: "VNC",
    hint: "use `vmctl vnc NAME --listen 127.0.0.1:5901` and point a VNC viewer there",
    kind: ConsoleKind::Vnc,
};

/// Answers a VNC attach request.
pub async fn handle(
    manager: Arc<Manager>,
    who: Identity,
    req: HttpRequest<Incoming>,
    name: String,
    idle: Option<Duration>,
) -> HttpResponse {
    let subject = match upgrade::caller(&manager, &req, &who, (&VNC, &name)).await {
        Ok(s) => s,
        Err(refusal) => return *refusal,
    };
    let socket = match manager.vnc_socket(&subject, &name).await {
        Ok(path) => path,
        Err(err) => return upgrade::refused(err),
    };
    let qemu = match upgrade::connect(&socket).await {
        Ok(s) => s,
        Err(refusal) => return *refusal,
    };
    tracing::debug!(vm = %name, user = %subject.name, "vnc client attached");
    let (user, vm) = (subject.name.clone(), name.clone());
    let done = move |end| tracing::debug!(%vm, %user, ?end, "vnc client detached");
    upgrade::relay(
        manager,
        req,
        qemu,
        (subject, name),
        (VNC_UPGRADE, idle),
        (None, done),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vnc_paths() {
        assert_eq!(vm_of("/v1/vms/web1/vnc"), Some("web1"));
        assert_eq!(vm_of("/v1/vms/web1/console"), None);
        assert_eq!(vm_of("/v1/vms/a/b/vnc"), None);
    }
}
