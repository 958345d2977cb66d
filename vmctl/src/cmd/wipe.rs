//! `vmctl wipe NAME`: resets a stopped VM's disk to a fresh overlay on its base (`vm.wipe`);
//! a clone's, on its template's disk layer, and its next start restores the template again.

use vm_proto::api::VmdApiClient;
use vm_proto::types::Vm;

use super::Ctx;
use crate::error::CliError;

/// Wipes the disk; confirms in table mode, prints the VM in JSON mode.
pub async fn run(ctx: &Ctx, name: String) -> Result<(), CliError> {
    let vm = ctx.connect().await?.vm_wipe(name).await?;
    ctx.out.done(&vm, &confirmation(&vm))
}

/// `wiped vm web1`; for a clone that will restore, what its next start does.
fn confirmation(vm: &Vm) -> String {
    match (&vm.template, vm.restore_pending) {
        (Some(template), true) => format!(
            "wiped vm {} (its next start restores template {template})",
            vm.name
        ),
        _ => format!("wiped vm {}", vm.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clone_is_told_it_restores_its_template() {
        let vm = crate::output::vm::tests::sample();
        assert_eq!(confirmation(&vm), "wiped vm web1");
        let clone = Vm {
            template: Some("lab".into()),
            restore_pending: true,
            ..vm
        };
        assert_eq!(
            confirmation(&clone),
            "wiped vm web1 (its next start restores template lab)"
        );
    }
}
