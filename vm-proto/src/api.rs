//! The JSON-RPC 2.0 interface of vmd: one trait, served by `vmd` and called by clients.
//!
//! Methods take positional parameters: a string name (`"params": ["web1"]`) or one request
//! object (`"params": [{"name": "web1", "image": "debian"}]`). Request objects reject unknown
//! fields. Errors carry a code from [`crate::ErrorCode`] and [`crate::ErrorData`] as `data`.
//! Every method that takes a name answers `not_found` (404) when no such object exists.
//!
//! Every call is authorized in vmd for the caller (peer uid, or the `Authorization: Bearer`
//! token of the HTTP request; `docs/security.md` has the matrix): an object the caller may not
//! see answers `not_found`, an action on a visible object the caller may not take answers
//! `permission_denied`, a bad or expired token answers `unauthenticated` (HTTP 401).

use jsonrpsee::proc_macros::rpc;

use crate::types::{
    ConsoleTicket, ConsoleTicketRequest, Image, ImageCreate, ImageImport, ImagePublish, ImageSet,
    Iso, IsoAttach, IsoImport, Login, Network, NetworkCreate, NicChange, PortAdd, PortForward,
    PortRemove, SystemInfo, Template, TemplateCreate, Token, TokenCreate, TokenSecret, User,
    UserAdd, UserPasswd, UserRemove, UserRemoved, UserSet, Vm, VmCreate, VmExtend, VmFilter,
    VmLogs, VmSet, VmStop, WhoAmI,
};

/// The vmd API.
#[cfg_attr(all(feature = "server", feature = "client"), rpc(server, client))]
#[cfg_attr(all(feature = "server", not(feature = "client")), rpc(server))]
#[cfg_attr(all(feature = "client", not(feature = "server")), rpc(client))]
pub trait VmdApi {
    /// Daemon and host overview: versions, paths, accelerator, counts, disk use, consistency
    /// issues found at start-up. Never fails.
    #[method(name = "system.info", with_extensions)]
    async fn system_info(&self) -> Result<SystemInfo, jsonrpsee::types::ErrorObjectOwned>;

    /// Turns a finished upload into a read-only qcow2 base image.
    ///
    /// Errors: `invalid_argument` (bad name; not a disk image; backing file, external data file
    /// or extents; encrypted), `not_found` (no such upload for this user), `already_exists`.
    #[method(name = "image.import", with_extensions)]
    async fn image_import(
        &self,
        params: ImageImport,
    ) -> Result<Image, jsonrpsee::types::ErrorObjectOwned>;

    /// Every base image, by name.
    #[method(name = "image.list", with_extensions)]
    async fn image_list(&self) -> Result<Vec<Image>, jsonrpsee::types::ErrorObjectOwned>;

    /// One base image.
    #[method(name = "image.get", with_extensions)]
    async fn image_get(&self, name: String) -> Result<Image, jsonrpsee::types::ErrorObjectOwned>;

    /// Changes an image's OS family, description or visibility; absent fields stay. Admins
    /// may change any image; a user only their own private ones, and may not make them
    /// public. All or nothing. (Since 2.3.)
    ///
    /// Errors: `invalid_argument` (no field given; a description too long or with control
    /// characters), `permission_denied` (a user on a public image, or making one public),
    /// `quota_exceeded` (making an image private over its owner's `max_disk_bytes`).
    #[method(name = "image.set", with_extensions)]
    async fn image_set(
        &self,
        params: ImageSet,
    ) -> Result<Image, jsonrpsee::types::ErrorObjectOwned>;

    /// Deletes a base image. Errors: `in_use` while any VM uses it (the message names them).
    #[method(name = "image.remove", with_extensions)]
    async fn image_remove(&self, name: String) -> Result<(), jsonrpsee::types::ErrorObjectOwned>;

    /// Defines a VM as a fresh qcow2 overlay on a base. The VM starts `stopped`.
    ///
    /// Errors: `invalid_argument` (name, cpus, memory, disk smaller than the base),
    /// `not_found` (no such image), `already_exists`.
    #[method(name = "vm.create", with_extensions)]
    async fn vm_create(&self, params: VmCreate) -> Result<Vm, jsonrpsee::types::ErrorObjectOwned>;

    /// The caller's VMs, by name; admins may ask for every user's (`all`) or one user's.
    /// Errors: `permission_denied` (a user asking for others' VMs), `not_found` (user).
    #[method(name = "vm.list", with_extensions)]
    async fn vm_list(
        &self,
        filter: Option<VmFilter>,
    ) -> Result<Vec<Vm>, jsonrpsee::types::ErrorObjectOwned>;

    /// Moves a VM's deadline `by_secs` later (from now if it already passed).
    /// Errors: `invalid_argument` (the VM has no deadline; beyond a year).
    #[method(name = "vm.extend", with_extensions)]
    async fn vm_extend(&self, params: VmExtend) -> Result<Vm, jsonrpsee::types::ErrorObjectOwned>;

    /// Changes a VM's vCPUs, memory, disk size (grow only) and description; absent fields stay.
    /// Precondition for vCPUs, memory and disk: no QEMU process (`wrong_state` otherwise); the
    /// description may change any time. All or nothing: every value is checked first.
    ///
    /// Errors: `invalid_argument` (no field given; values out of the bounds of `vm.create`; a
    /// smaller disk; a description too long or with control characters), `quota_exceeded` (a
    /// larger disk over `max_disk_bytes`), `wrong_state`.
    #[method(name = "vm.set", with_extensions)]
    async fn vm_set(&self, params: VmSet) -> Result<Vm, jsonrpsee::types::ErrorObjectOwned>;

    /// Checks a password and opens a session: a bearer token valid for `session_ttl_secs`.
    /// Errors: `unauthenticated` (wrong user or password, no password set, or too many
    /// failures: the message says when to retry). Works without any other credentials.
    #[method(name = "auth.login")]
    async fn auth_login(
        &self,
        params: Login,
    ) -> Result<TokenSecret, jsonrpsee::types::ErrorObjectOwned>;

    /// Ends the caller's session (the token of this request); VMs tied to it expire.
    /// Errors: `invalid_argument` when the caller is not using a session token.
    #[method(name = "auth.logout", with_extensions)]
    async fn auth_logout(&self) -> Result<(), jsonrpsee::types::ErrorObjectOwned>;

    /// Who the caller is, with which role, and their quota use.
    #[method(name = "auth.whoami", with_extensions)]
    async fn auth_whoami(&self) -> Result<WhoAmI, jsonrpsee::types::ErrorObjectOwned>;

    /// Creates an account (admins). Errors: `already_exists` (name or uid), `invalid_argument`.
    #[method(name = "user.add", with_extensions)]
    async fn user_add(&self, params: UserAdd) -> Result<User, jsonrpsee::types::ErrorObjectOwned>;

    /// Every account (admins); a user sees only their own.
    #[method(name = "user.list", with_extensions)]
    async fn user_list(&self) -> Result<Vec<User>, jsonrpsee::types::ErrorObjectOwned>;

    /// One account with its quota use (admins, or the caller's own).
    #[method(name = "user.get", with_extensions)]
    async fn user_get(&self, name: String) -> Result<User, jsonrpsee::types::ErrorObjectOwned>;

    /// Removes an account (admins). Errors: `in_use` while it owns VMs or images, unless
    /// `force`, which removes them (stopping VMs) and says what went.
    #[method(name = "user.remove", with_extensions)]
    async fn user_remove(
        &self,
        params: UserRemove,
    ) -> Result<UserRemoved, jsonrpsee::types::ErrorObjectOwned>;

    /// Sets or clears a password (admins, or the caller's own). Ends the user's sessions.
    #[method(name = "user.passwd", with_extensions)]
    async fn user_passwd(
        &self,
        params: UserPasswd,
    ) -> Result<(), jsonrpsee::types::ErrorObjectOwned>;

    /// Changes role, uid link or quotas (admins).
    #[method(name = "user.set", with_extensions)]
    async fn user_set(&self, params: UserSet) -> Result<User, jsonrpsee::types::ErrorObjectOwned>;

    /// Creates an API token; the secret is in the answer only. Users create their own; admins
    /// for anyone.
    #[method(name = "token.create", with_extensions)]
    async fn token_create(
        &self,
        params: TokenCreate,
    ) -> Result<TokenSecret, jsonrpsee::types::ErrorObjectOwned>;

    /// The caller's tokens and sessions (admins: everyone's). Never the secrets.
    #[method(name = "token.list", with_extensions)]
    async fn token_list(&self) -> Result<Vec<Token>, jsonrpsee::types::ErrorObjectOwned>;

    /// Revokes a token or session by id (own, or any for admins).
    #[method(name = "token.revoke", with_extensions)]
    async fn token_revoke(&self, id: u64) -> Result<(), jsonrpsee::types::ErrorObjectOwned>;

    /// One VM.
    #[method(name = "vm.get", with_extensions)]
    async fn vm_get(&self, name: String) -> Result<Vm, jsonrpsee::types::ErrorObjectOwned>;

    /// Deletes a VM and its overlay. Precondition: no QEMU process (`wrong_state` otherwise).
    #[method(name = "vm.remove", with_extensions)]
    async fn vm_remove(&self, name: String) -> Result<(), jsonrpsee::types::ErrorObjectOwned>;

    /// Replaces the VM's overlay with a fresh one on the same base (new file, then rename).
    /// Precondition: no QEMU process (`wrong_state` otherwise). Returns the VM afterwards.
    #[method(name = "vm.wipe", with_extensions)]
    async fn vm_wipe(&self, name: String) -> Result<Vm, jsonrpsee::types::ErrorObjectOwned>;

    /// Starts the VM's QEMU and returns once QMP reports it running. Precondition: `stopped`
    /// or `crashed` (`wrong_state` otherwise). Errors: `internal` with QEMU's own error text
    /// when it fails to start (the VM stays `stopped`, `reason` says why).
    #[method(name = "vm.start", with_extensions)]
    async fn vm_start(&self, name: String) -> Result<Vm, jsonrpsee::types::ErrorObjectOwned>;

    /// Stops the VM: ACPI power-down, wait up to `timeout_secs`, then force; `force` ends QEMU
    /// at once. Returns once no process remains. Precondition: a process exists.
    #[method(name = "vm.stop", with_extensions)]
    async fn vm_stop(&self, params: VmStop) -> Result<Vm, jsonrpsee::types::ErrorObjectOwned>;

    /// Resets the guest (hardware reset). Precondition: `running` or `paused`.
    #[method(name = "vm.reboot", with_extensions)]
    async fn vm_reboot(&self, name: String) -> Result<Vm, jsonrpsee::types::ErrorObjectOwned>;

    /// Pauses the guest's vCPUs. Precondition: `running`.
    #[method(name = "vm.pause", with_extensions)]
    async fn vm_pause(&self, name: String) -> Result<Vm, jsonrpsee::types::ErrorObjectOwned>;

    /// Resumes a paused guest. Precondition: `paused`.
    #[method(name = "vm.resume", with_extensions)]
    async fn vm_resume(&self, name: String) -> Result<Vm, jsonrpsee::types::ErrorObjectOwned>;

    /// The end of the VM's console log (at most `tail_bytes`, default 64 KiB).
    #[method(name = "vm.logs", with_extensions)]
    async fn vm_logs(
        &self,
        name: String,
        tail_bytes: Option<u64>,
    ) -> Result<VmLogs, jsonrpsee::types::ErrorObjectOwned>;

    /// Follows the VM's console log from its current end (WebSocket only).
    #[subscription(name = "vm.follow_logs" => "vm.log", unsubscribe = "vm.unfollow_logs", item = crate::types::LogChunk, with_extensions)]
    async fn vm_follow_logs(&self, name: String) -> jsonrpsee::core::SubscriptionResult;

    /// Streams events with `seq > since` (stored ones first, read in bounded pages as the client
    /// takes them, then live), in order. Without `since`, only new events (WebSocket only).
    #[subscription(name = "events.subscribe" => "events.event", unsubscribe = "events.unsubscribe", item = crate::types::Event, with_extensions)]
    async fn events_subscribe(&self, since: Option<u64>) -> jsonrpsee::core::SubscriptionResult;

    /// Stored events with `seq > since`, at most `limit` (default 1000, capped at 1000), oldest
    /// first. Page on with the last `seq` as `since`.
    #[method(name = "events.list", with_extensions)]
    async fn events_list(
        &self,
        since: Option<u64>,
        limit: Option<u64>,
    ) -> Result<Vec<crate::types::Event>, jsonrpsee::types::ErrorObjectOwned>;

    /// Turns a finished upload into an ISO in the library (validated as ISO 9660 or UDF).
    /// Errors: `invalid_argument` (not an ISO, bad name), `not_found` (upload), `already_exists`.
    #[method(name = "iso.import", with_extensions)]
    async fn iso_import(
        &self,
        params: IsoImport,
    ) -> Result<Iso, jsonrpsee::types::ErrorObjectOwned>;

    /// Every ISO, by name.
    #[method(name = "iso.list", with_extensions)]
    async fn iso_list(&self) -> Result<Vec<Iso>, jsonrpsee::types::ErrorObjectOwned>;

    /// One ISO.
    #[method(name = "iso.get", with_extensions)]
    async fn iso_get(&self, name: String) -> Result<Iso, jsonrpsee::types::ErrorObjectOwned>;

    /// Deletes an ISO. Errors: `in_use` while any VM (or install VM) has it inserted.
    #[method(name = "iso.remove", with_extensions)]
    async fn iso_remove(&self, name: String) -> Result<(), jsonrpsee::types::ErrorObjectOwned>;

    /// Inserts an ISO into a VM's CD-ROM drive, running (QMP media change) or stopped.
    #[method(name = "vm.attach_iso", with_extensions)]
    async fn vm_attach_iso(
        &self,
        params: IsoAttach,
    ) -> Result<Vm, jsonrpsee::types::ErrorObjectOwned>;

    /// A one-shot ticket for one console or VNC attach of a VM the caller may operate, valid
    /// for `CONSOLE_TICKET_SECS` and bound to the caller, the VM and the kind. Errors as
    /// `vm.get`; `unavailable` when too many tickets are outstanding.
    #[method(name = "vm.console_ticket", with_extensions)]
    async fn vm_console_ticket(
        &self,
        params: ConsoleTicketRequest,
    ) -> Result<ConsoleTicket, jsonrpsee::types::ErrorObjectOwned>;

    /// Ejects the VM's ISO, running or stopped.
    #[method(name = "vm.detach_iso", with_extensions)]
    async fn vm_detach_iso(&self, vm: String) -> Result<Vm, jsonrpsee::types::ErrorObjectOwned>;

    /// Creates an unsealed base: a blank disk and an install VM of the same name that boots
    /// the ISO with the disk attached writable. Errors as `vm.create`, plus `not_found` (ISO).
    #[method(name = "image.create", with_extensions)]
    async fn image_create(
        &self,
        params: ImageCreate,
    ) -> Result<Image, jsonrpsee::types::ErrorObjectOwned>;

    /// Seals an installed base: its install VM (stopped) is removed and its disk becomes the
    /// read-only base. Errors: `wrong_state` (install VM running, or already sealed).
    #[method(name = "image.seal", with_extensions)]
    async fn image_seal(&self, name: String) -> Result<Image, jsonrpsee::types::ErrorObjectOwned>;

    /// Flattens a stopped VM's overlay and its base into a new standalone sealed base.
    #[method(name = "image.publish", with_extensions)]
    async fn image_publish(
        &self,
        params: ImagePublish,
    ) -> Result<Image, jsonrpsee::types::ErrorObjectOwned>;

    /// Creates a lab network (since 2.6): a Linux bridge, isolated unless `nat`, with DHCP if
    /// asked. Admins' networks are shared; a user's are their own, inside `network_pool`, at
    /// most `max_networks_per_user`.
    ///
    /// Errors: `invalid_argument` (name; subnet malformed, outside the pool for users,
    /// overlapping another network or a host route), `already_exists`, `quota_exceeded`,
    /// `unavailable` (vmd lacks `CAP_NET_ADMIN`, or dnsmasq/nft are missing: the hint says).
    #[method(name = "net.create", with_extensions)]
    async fn net_create(
        &self,
        params: NetworkCreate,
    ) -> Result<Network, jsonrpsee::types::ErrorObjectOwned>;

    /// The networks the caller may use: shared ones and their own (admins: all).
    #[method(name = "net.list", with_extensions)]
    async fn net_list(&self) -> Result<Vec<Network>, jsonrpsee::types::ErrorObjectOwned>;

    /// One network with its members and leases.
    #[method(name = "net.get", with_extensions)]
    async fn net_get(&self, name: String) -> Result<Network, jsonrpsee::types::ErrorObjectOwned>;

    /// Takes a warm template from a running VM (since 2.7): pauses it, saves its device state
    /// and RAM, stops it and freezes its disk as the template's layer; the VM becomes the
    /// template's first clone. Admins' templates are shared.
    ///
    /// Errors: `invalid_argument` (name; the VM has lab NICs, an ISO, is an install VM or a
    /// clone; its QEMU was started without file-backed RAM: restart it), `wrong_state` (not
    /// running or paused), `already_exists`, `not_found` (the VM), `quota_exceeded` (disk).
    #[method(name = "template.create", with_extensions)]
    async fn template_create(
        &self,
        params: TemplateCreate,
    ) -> Result<Template, jsonrpsee::types::ErrorObjectOwned>;

    /// The templates the caller may use: shared ones and their own (admins: all).
    #[method(name = "template.list", with_extensions)]
    async fn template_list(&self) -> Result<Vec<Template>, jsonrpsee::types::ErrorObjectOwned>;

    /// One template with its clones.
    #[method(name = "template.get", with_extensions)]
    async fn template_get(
        &self,
        name: String,
    ) -> Result<Template, jsonrpsee::types::ErrorObjectOwned>;

    /// Removes a template and its files. Errors: `in_use` while any VM is a clone of it (the
    /// message names them), `permission_denied` (a shared template, for users).
    #[method(name = "template.remove", with_extensions)]
    async fn template_remove(&self, name: String)
        -> Result<(), jsonrpsee::types::ErrorObjectOwned>;

    /// Removes a network: its bridge, dnsmasq and firewall rules. Errors: `in_use` while any
    /// VM has a NIC on it (the message names them), `permission_denied` (a shared network).
    #[method(name = "net.remove", with_extensions)]
    async fn net_remove(&self, name: String) -> Result<(), jsonrpsee::types::ErrorObjectOwned>;

    /// Adds a NIC on a network to a stopped VM (last in order, a fresh MAC).
    /// Errors: `wrong_state` (a process exists), `invalid_argument` (already on it; too many
    /// NICs), `not_found` (VM or network).
    #[method(name = "vm.nic_add", with_extensions)]
    async fn vm_nic_add(&self, params: NicChange)
        -> Result<Vm, jsonrpsee::types::ErrorObjectOwned>;

    /// Removes a stopped VM's NIC on a network. Errors: `wrong_state`, `not_found` (no NIC
    /// on that network).
    #[method(name = "vm.nic_remove", with_extensions)]
    async fn vm_nic_remove(
        &self,
        params: NicChange,
    ) -> Result<Vm, jsonrpsee::types::ErrorObjectOwned>;

    /// Adds a port forward on the user-mode NIC: stored, and applied at once over QMP while
    /// a process exists. Errors: `invalid_argument` (no user-mode NIC; ports; an address
    /// the config does not allow), `permission_denied` (a host port below 1024 for a user),
    /// `already_exists` (the host port is taken by another forward), `unavailable` (QEMU
    /// could not bind it: nothing is stored).
    #[method(name = "vm.port_add", with_extensions)]
    async fn vm_port_add(&self, params: PortAdd) -> Result<Vm, jsonrpsee::types::ErrorObjectOwned>;

    /// A VM's port forwards.
    #[method(name = "vm.port_list", with_extensions)]
    async fn vm_port_list(
        &self,
        vm: String,
    ) -> Result<Vec<PortForward>, jsonrpsee::types::ErrorObjectOwned>;

    /// Removes a port forward, live while a process exists. Errors: `not_found` (no such
    /// forward).
    #[method(name = "vm.port_remove", with_extensions)]
    async fn vm_port_remove(
        &self,
        params: PortRemove,
    ) -> Result<Vm, jsonrpsee::types::ErrorObjectOwned>;
}
