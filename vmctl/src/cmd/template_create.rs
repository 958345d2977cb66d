//! `vmctl template create NAME --from VM`: takes a warm template from a running VM
//! (`template.create`). The names are checked here first (exit 6 without a round trip); vmd
//! refuses VMs a template cannot be taken from (lab NICs, an ISO, an install VM, a clone).

use vm_proto::api::VmdApiClient;
use vm_proto::names::validate_name;
use vm_proto::types::{Template, TemplateCreate};

use super::Ctx;
use crate::cli::TemplateCreateArgs;
use crate::error::CliError;
use crate::output;

/// Creates the template, prints it (nothing with `-q`) and, in table mode, what became of
/// the source VM on stderr.
pub async fn run(ctx: &Ctx, args: TemplateCreateArgs) -> Result<(), CliError> {
    let request = request(args)?;
    let template = ctx.connect().await?.template_create(request).await?;
    ctx.out.result(&template, output::template::details)?;
    if !ctx.out.quiet && !ctx.out.is_json() {
        eprintln!("{}", source_note(&template));
    }
    Ok(())
}

/// Validates the arguments and builds the `template.create` parameters.
fn request(args: TemplateCreateArgs) -> Result<TemplateCreate, CliError> {
    validate_name("template", &args.name).map_err(CliError::invalid)?;
    validate_name("vm", &args.from).map_err(CliError::invalid)?;
    Ok(TemplateCreate {
        name: args.name,
        from: args.from,
        shared: args.shared,
    })
}

/// What became of the VM the template was taken from, one line.
fn source_note(template: &Template) -> String {
    let (vm, name) = (&template.source_vm, &template.name);
    format!(
        "vm {vm} is now the first clone of template {name}, stopped: its next start restores \
         this moment (more clones: vmctl create NAME --template {name})"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(name: &str, from: &str) -> TemplateCreateArgs {
        TemplateCreateArgs {
            name: name.into(),
            from: from.into(),
            shared: false,
        }
    }

    #[test]
    fn names_are_passed_on() {
        let req = request(args("lab-base", "web1")).expect("valid");
        assert_eq!((req.name.as_str(), req.from.as_str()), ("lab-base", "web1"));
    }

    #[test]
    fn bad_names_exit_6() {
        for (name, from) in [("Lab", "web1"), ("lab", "web_1"), ("", "web1")] {
            let err = request(args(name, from)).expect_err(name);
            assert_eq!(err.exit_code(), 6, "{name} {from}");
        }
        let err = request(args("lab", "Web1")).expect_err("vm name");
        assert!(err.to_string().contains("vm name"), "{err}");
    }

    #[test]
    fn the_note_names_the_source_vm_and_how_to_clone() {
        let note = source_note(&output::template::tests::sample());
        assert!(note.starts_with("vm web1 is now the first clone of template lab-base"));
        assert!(note.contains("next start restores"), "{note}");
        assert!(
            note.contains("vmctl create NAME --template lab-base"),
            "{note}"
        );
    }
}
