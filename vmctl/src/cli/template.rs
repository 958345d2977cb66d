//! Command-line syntax of warm templates: the `template` verbs and where `create` takes a
//! VM's disk from (`--image BASE` or `--template T`, exactly one).

use clap::{Args, Subcommand};

use super::NamesArg;

/// The `template` verbs.
#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// Take a warm template from a running VM: its RAM, device state and disk as they are
    /// now (the VM is stopped and becomes the template's first clone)
    Create(TemplateCreateArgs),
    /// List the templates you may use (shared ones and your own; admins: all)
    #[command(visible_alias = "list")]
    Ls,
    /// Show a template with its clones
    Show(TemplateNameArg),
    /// Delete templates no VM is a clone of, in order; stops at the first failure
    #[command(visible_alias = "remove")]
    Rm(NamesArg),
}

/// A template name.
#[derive(Debug, Args)]
pub struct TemplateNameArg {
    /// Name of the template
    pub name: String,
}

/// Arguments of `template create`.
#[derive(Debug, Args)]
pub struct TemplateCreateArgs {
    /// Name of the new template
    pub name: String,
    /// The running (or paused) VM to take it from, at this moment
    #[arg(long, value_name = "VM")]
    pub from: String,
    /// Let every user see it and create clones of it (admins only) [default: private]
    #[arg(long)]
    pub shared: bool,
}

/// Where `create` takes the VM's disk from: exactly one of the two.
#[derive(Debug, Clone, Default, Args)]
#[group(required = true, multiple = false)]
pub struct VmSourceArgs {
    /// Base image the VM's disk is an overlay of
    #[arg(long, value_name = "BASE")]
    pub image: Option<String>,
    /// Warm template to clone: the VM's first start restores the template's saved moment
    /// instead of booting (cpus, memory, disk, firmware and NICs are the template's)
    #[arg(long, value_name = "TEMPLATE")]
    pub template: Option<String>,
}
