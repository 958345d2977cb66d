//! What vmd's integration tests (vmd/tests, vmd-web/tests) and vmd-bench share, so each
//! harness keeps only what is its own: the project's test guest ([`guest`]), reading raw HTTP
//! replies ([`http`]), and killing the QEMUs a test left behind ([`procs`]).

pub mod guest;
pub mod http;
pub mod procs;
