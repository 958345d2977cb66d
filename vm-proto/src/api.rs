//! The JSON-RPC 2.0 interface of vmd: one trait, served by `vmd` and called by clients.
//!
//! Methods take positional parameters: a string name (`"params": ["web1"]`) or one request
//! object (`"params": [{"name": "web1", "image": "debian"}]`). Request objects reject unknown
//! fields. Errors carry a code from [`crate::ErrorCode`] and [`crate::ErrorData`] as `data`.
//! Every method that takes a name answers `not_found` (404) when no such object exists.

use jsonrpsee::proc_macros::rpc;

use crate::types::{Image, ImageImport, SystemInfo, Vm, VmCreate};

/// The vmd API.
#[cfg_attr(all(feature = "server", feature = "client"), rpc(server, client))]
#[cfg_attr(all(feature = "server", not(feature = "client")), rpc(server))]
#[cfg_attr(all(feature = "client", not(feature = "server")), rpc(client))]
pub trait VmdApi {
    /// Daemon and host overview: versions, paths, accelerator, counts, disk use, consistency
    /// issues found at start-up. Never fails.
    #[method(name = "system.info")]
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
    #[method(name = "image.list")]
    async fn image_list(&self) -> Result<Vec<Image>, jsonrpsee::types::ErrorObjectOwned>;

    /// One base image.
    #[method(name = "image.get")]
    async fn image_get(&self, name: String) -> Result<Image, jsonrpsee::types::ErrorObjectOwned>;

    /// Deletes a base image. Errors: `in_use` while any VM uses it (the message names them).
    #[method(name = "image.remove")]
    async fn image_remove(&self, name: String) -> Result<(), jsonrpsee::types::ErrorObjectOwned>;

    /// Defines a VM as a fresh qcow2 overlay on a base. The VM starts `stopped`.
    ///
    /// Errors: `invalid_argument` (name, cpus, memory, disk smaller than the base),
    /// `not_found` (no such image), `already_exists`.
    #[method(name = "vm.create", with_extensions)]
    async fn vm_create(&self, params: VmCreate) -> Result<Vm, jsonrpsee::types::ErrorObjectOwned>;

    /// Every VM, by name.
    #[method(name = "vm.list")]
    async fn vm_list(&self) -> Result<Vec<Vm>, jsonrpsee::types::ErrorObjectOwned>;

    /// One VM.
    #[method(name = "vm.get")]
    async fn vm_get(&self, name: String) -> Result<Vm, jsonrpsee::types::ErrorObjectOwned>;

    /// Deletes a VM and its overlay. Precondition: no QEMU process (`wrong_state` otherwise).
    #[method(name = "vm.remove")]
    async fn vm_remove(&self, name: String) -> Result<(), jsonrpsee::types::ErrorObjectOwned>;

    /// Replaces the VM's overlay with a fresh one on the same base (new file, then rename).
    /// Precondition: no QEMU process (`wrong_state` otherwise). Returns the VM afterwards.
    #[method(name = "vm.wipe")]
    async fn vm_wipe(&self, name: String) -> Result<Vm, jsonrpsee::types::ErrorObjectOwned>;
}
