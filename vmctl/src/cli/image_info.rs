//! Command-line syntax of what people read about a base image: `--os`, `--description` and
//! `--cloud-init`/`--no-cloud-init` (on `image import`, `image create`, `image publish`) and
//! the `image set` verb.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::Args;
use vm_proto::types::OsFamily;

/// `--os FAMILY` and `--description TEXT` of the verbs that make an image.
#[derive(Debug, Clone, Default, Args)]
pub struct ImageInfoArgs {
    /// OS family, for the icon and the OS column [daemon default: guessed from the name]
    #[arg(long, value_name = "FAMILY", value_parser = os_parser())]
    pub os: Option<OsFamily>,
    /// Free text shown under the name, at most 200 characters on one line
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// The OS runs cloud-init: VMs made from the image get a NoCloud seed [daemon default:
    /// detected on import, inherited on publish, off for an install]
    #[arg(long, conflicts_with = "no_cloud_init")]
    pub cloud_init: bool,
    /// The OS does not run cloud-init: VMs get no seed unless their creator asks for one
    #[arg(long)]
    pub no_cloud_init: bool,
}

impl ImageInfoArgs {
    /// `Some(true)` for `--cloud-init`, `Some(false)` for `--no-cloud-init`, else `None`.
    pub fn cloud_init_flag(&self) -> Option<bool> {
        visibility(self.cloud_init, self.no_cloud_init)
    }
}

/// Arguments of `image set`.
#[derive(Debug, Args)]
pub struct ImageSetArgs {
    /// The image to change
    pub name: String,
    /// New OS family, description (`""` clears it)
    #[command(flatten)]
    pub info: ImageInfoArgs,
    /// Make it public: every user may use it (admins)
    #[arg(long, conflicts_with = "private")]
    pub public: bool,
    /// Make it private to its owner (it then counts against the owner's disk quota)
    #[arg(long)]
    pub private: bool,
}

/// Parses an [`OsFamily`] name; `--help` lists the names.
fn os_parser() -> impl TypedValueParser<Value = OsFamily> {
    PossibleValuesParser::new(OsFamily::ALL.map(OsFamily::as_str))
        .try_map(|name| OsFamily::parse(&name).ok_or("unknown OS family"))
}

/// `Some(true)` for `--public` (or another "yes" flag), `Some(false)` for `--private` (its
/// "no"), else `None`.
pub fn visibility(public: bool, private: bool) -> Option<bool> {
    match (public, private) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    }
}
