//! What vmd's integration tests (vmd/tests, vmd-web/tests) and vmd-bench share, so each
//! harness keeps only what is its own: the project's test guests ([`guest`], and the Debian 12
//! cloud-init guest [`cloud_guest`]), reading raw HTTP replies ([`http`]), killing the
//! QEMUs a test left behind ([`procs`]), and named network namespaces for the networking
//! tests ([`netns`]).

pub mod cloud_guest;
pub mod guest;
pub mod http;
pub mod netns;
pub mod procs;
