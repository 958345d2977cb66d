//! `vmctl ls [--all | --user NAME] [--label K[=V] …]`: the caller's VMs, or (admins)
//! everyone's or one user's (`vm.list`), optionally only those whose labels match.

use vm_proto::api::VmdApiClient;
use vm_proto::types::VmFilter;

use super::Ctx;
use crate::cli::LsArgs;
use crate::error::CliError;
use crate::output;

/// Prints the VMs as a table, names (`-q`) or a JSON array.
pub async fn run(ctx: &Ctx, args: LsArgs) -> Result<(), CliError> {
    let vms = ctx.connect().await?.vm_list(filter(args)).await?;
    ctx.out.list(&vms, |vm| &vm.name, output::vm::table)
}

/// The `vm.list` filter: `None` when neither option is given.
fn filter(args: LsArgs) -> Option<VmFilter> {
    let any = args.all || args.user.is_some() || !args.labels.is_empty();
    any.then_some(VmFilter {
        all: args.all,
        user: args.user,
        labels: args.labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_option_sends_no_filter() {
        let args = |all, user: Option<&str>| LsArgs {
            all,
            user: user.map(String::from),
            labels: Vec::new(),
        };
        assert_eq!(filter(args(false, None)), None);
        let all = filter(args(true, None)).expect("filter");
        assert!(all.all && all.user.is_none());
        let one = filter(args(false, Some("ann"))).expect("filter");
        assert_eq!((one.all, one.user.as_deref()), (false, Some("ann")));
    }
}
