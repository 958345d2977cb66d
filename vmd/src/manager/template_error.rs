//! Failures of warm templates and their clones, each mapped to one API error kind and a hint
//! (kept apart from [`super::Error`], which wraps them).

use vm_proto::ErrorCode;

/// What went wrong with a template or a clone.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// No template of that name (or one the caller may not see).
    #[error("template {0} not found")]
    NotFound(String),
    /// A template with that name exists.
    #[error("template {0} already exists")]
    Exists(String),
    /// VMs are clones of it.
    #[error("template {name} has clones: {}", clone_list(clones, *hidden))]
    InUse {
        /// The template.
        name: String,
        /// Its clones the caller may see.
        clones: Vec<String>,
        /// How many clones the caller may not see.
        hidden: usize,
    },
    /// The VM cannot become a template; the message says why.
    #[error("vm {vm} cannot become a template: {why}")]
    NotTemplatable {
        /// The VM.
        vm: String,
        /// Why.
        why: String,
        /// What to do.
        hint: String,
    },
    /// A clone's settings are the template's; this one asks for others, or changes them
    /// before its first start.
    #[error("{0}")]
    Fixed(String),
    /// QEMU could not save the VM; it runs on as before.
    #[error("cannot save vm {vm}: {reason}")]
    Save {
        /// The VM.
        vm: String,
        /// QEMU's words.
        reason: String,
    },
    /// A clone's start could not restore the template; nothing runs.
    #[error("vm {vm} could not restore template {template}: {reason}")]
    Restore {
        /// The clone.
        vm: String,
        /// Its template.
        template: String,
        /// QEMU's words.
        reason: String,
    },
}

/// The visible clones, and a count of the others.
fn clone_list(clones: &[String], hidden: usize) -> String {
    let mut parts = clones.to_vec();
    if hidden > 0 {
        parts.push(format!("{hidden} vm(s) of other users"));
    }
    parts.join(", ")
}

impl TemplateError {
    /// The API error kind.
    pub fn code(&self) -> ErrorCode {
        match self {
            TemplateError::NotFound(_) => ErrorCode::NotFound,
            TemplateError::Exists(_) => ErrorCode::AlreadyExists,
            TemplateError::InUse { .. } => ErrorCode::InUse,
            TemplateError::NotTemplatable { .. } | TemplateError::Fixed(_) => {
                ErrorCode::InvalidArgument
            }
            TemplateError::Save { .. } | TemplateError::Restore { .. } => ErrorCode::Internal,
        }
    }

    /// What the caller can do about it.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            TemplateError::NotFound(_) => "list templates with `vmctl template ls`".into(),
            TemplateError::Exists(_) => {
                "choose another name or remove the existing one first".into()
            }
            TemplateError::InUse { clones, hidden, .. } if clones.is_empty() => {
                format!("{hidden} clone(s) belong to other users: ask an admin")
            }
            TemplateError::InUse { clones, .. } => format!(
                "remove the clones first: {}",
                clones
                    .iter()
                    .map(|vm| format!("vmctl rm {vm}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            TemplateError::NotTemplatable { hint, .. } => hint.clone(),
            TemplateError::Fixed(_) => {
                "a clone has its template's CPUs, memory, disk, firmware and devices until its first start".into()
            }
            TemplateError::Save { vm, .. } => {
                format!("nothing was saved and the vm was left as it was (`vmctl show {vm}`); see `vmctl logs {vm}`")
            }
            TemplateError::Restore { template, vm, .. } => format!(
                "the template no longer fits this QEMU or host: recreate it (`vmctl template rm {template}` after removing its clones, then `vmctl template create` from a running VM); `vmctl logs {vm}` has QEMU's log"
            ),
        })
    }
}
