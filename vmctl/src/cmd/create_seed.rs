//! The cloud-init part of `vmctl create`: `--ssh-key FILE|-` (repeatable), `--user`,
//! `--password-stdin`, `--cloud-init FILE`, `--no-cloud-init`.
//!
//! vmctl reads every file itself (vmd never reads a caller's files) and checks it with
//! vm-proto's rules before connecting. Without `--ssh-key`, the caller's `~/.ssh/*.pub` keys
//! are sent when the image runs cloud-init (so `vmctl ssh` works out of the box), never for
//! other images. At most one option reads stdin.

use std::io::Read;
use std::path::{Path, PathBuf};

use vm_proto::types::{
    user_data_kind, validate_guest_password, validate_guest_user, validate_ssh_key,
    CloudInitRequest, SSH_KEYS_MAX, USER_DATA_MAX_BYTES,
};

use crate::cli::ProvisionArgs;
use crate::error::CliError;
use crate::password;

/// The `cloud_init` field of `vm.create` from the options, checked; `None` when no option
/// was given (then [`default_keys`] may apply).
pub fn request(args: &ProvisionArgs) -> Result<Option<CloudInitRequest>, CliError> {
    if args.no_cloud_init {
        return Ok(Some(CloudInitRequest {
            enabled: false,
            ..CloudInitRequest::default()
        }));
    }
    let stdin_users = args.ssh_key.iter().filter(|p| is_stdin(p)).count()
        + usize::from(args.password_stdin)
        + usize::from(args.cloud_init.as_deref().is_some_and(is_stdin));
    if stdin_users > 1 {
        return Err(CliError::invalid(
            "only one of --ssh-key -, --password-stdin and --cloud-init - can read stdin",
        ));
    }
    if args.ssh_key.is_empty()
        && args.user.is_none()
        && !args.password_stdin
        && args.cloud_init.is_none()
    {
        return Ok(None);
    }
    let mut ssh_keys = Vec::new();
    for path in &args.ssh_key {
        ssh_keys.extend(read_keys(path)?);
    }
    if let Some(user) = &args.user {
        validate_guest_user(user).map_err(CliError::invalid)?;
    }
    Ok(Some(CloudInitRequest {
        enabled: true,
        ssh_keys: check_count(ssh_keys)?,
        user: args.user.clone(),
        password: args.password_stdin.then(read_password).transpose()?,
        user_data: args.cloud_init.as_deref().map(read_user_data).transpose()?,
    }))
}

/// The caller's `~/.ssh/*.pub` keys (valid ones, sorted by file name), for an image that
/// runs cloud-init when no option was given; `None` when there are none.
pub fn default_keys() -> Option<CloudInitRequest> {
    let dir = directories::BaseDirs::new()?.home_dir().join(".ssh");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pub"))
        .collect();
    files.sort();
    let keys: Vec<String> = files
        .iter()
        .filter_map(|p| read_keys(p).ok())
        .flatten()
        .take(SSH_KEYS_MAX)
        .collect();
    (!keys.is_empty()).then(|| CloudInitRequest {
        ssh_keys: keys,
        ..CloudInitRequest::default()
    })
}

fn is_stdin(path: &Path) -> bool {
    path == Path::new("-")
}

/// The key lines of a `.pub` or `authorized_keys`-style file (blank lines and `#` comments
/// skipped), each checked.
fn read_keys(path: &Path) -> Result<Vec<String>, CliError> {
    let text = read_text(path, 64 * 1024, "SSH public key")?;
    let keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    if keys.is_empty() {
        return Err(CliError::invalid(format!(
            "{} holds no SSH public key",
            path.display()
        )));
    }
    for key in &keys {
        validate_ssh_key(key).map_err(|e| CliError::invalid(format!("{}: {e}", path.display())))?;
    }
    Ok(keys)
}

fn check_count(keys: Vec<String>) -> Result<Vec<String>, CliError> {
    match keys.len() > SSH_KEYS_MAX {
        true => Err(CliError::invalid(format!(
            "{} SSH keys given; at most {SSH_KEYS_MAX} are allowed",
            keys.len()
        ))),
        false => Ok(keys),
    }
}

fn read_password() -> Result<String, CliError> {
    let password = password::read(password::Source::Stdin)?;
    validate_guest_password(&password).map_err(CliError::invalid)?;
    Ok(password)
}

fn read_user_data(path: &Path) -> Result<String, CliError> {
    let text = read_text(path, USER_DATA_MAX_BYTES, "user-data")?;
    user_data_kind(&text).map_err(|e| CliError::invalid(format!("{}: {e}", path.display())))?;
    Ok(text)
}

/// Reads `path` (`-`: stdin) as UTF-8 text of at most `max` bytes.
fn read_text(path: &Path, max: usize, what: &str) -> Result<String, CliError> {
    let io_err = |source| CliError::Io {
        context: format!("cannot read the {what} file {}", path.display()),
        source,
    };
    let mut bytes = Vec::new();
    let limit = max as u64 + 1;
    match is_stdin(path) {
        true => std::io::stdin().lock().take(limit).read_to_end(&mut bytes),
        false => std::fs::File::open(path).and_then(|f| f.take(limit).read_to_end(&mut bytes)),
    }
    .map_err(io_err)?;
    if bytes.len() > max {
        return Err(CliError::invalid(format!(
            "the {what} file {} is larger than {max} bytes",
            path.display()
        )));
    }
    String::from_utf8(bytes).map_err(|_| {
        CliError::invalid(format!(
            "the {what} file {} is not UTF-8 text",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBd2kZ0cZ3bm9tYXJr me@host";

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().expect("temp");
        std::fs::write(f.path(), text).expect("write");
        f
    }

    #[test]
    fn keys_files_are_read_line_by_line_and_checked() {
        let good = file(&format!("# mine\n{KEY}\n\n{KEY} other\n"));
        assert_eq!(read_keys(good.path()).expect("keys").len(), 2);
        let private = file("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n");
        let err = read_keys(private.path()).expect_err("a private key is refused");
        assert_eq!(err.exit_code(), 6);
        let empty = file("# nothing\n");
        assert!(read_keys(empty.path()).is_err());
    }

    #[test]
    fn options_build_the_request_or_refuse() {
        let key = file(KEY);
        let args = ProvisionArgs {
            ssh_key: vec![key.path().into()],
            user: Some("lab".into()),
            ..ProvisionArgs::default()
        };
        let req = request(&args).expect("ok").expect("some");
        assert_eq!((req.ssh_keys.len(), req.user.as_deref()), (1, Some("lab")));
        assert!(request(&ProvisionArgs::default()).expect("ok").is_none());
        let off = ProvisionArgs {
            no_cloud_init: true,
            ..ProvisionArgs::default()
        };
        assert!(!request(&off).expect("ok").expect("some").enabled);
        let two_stdin = ProvisionArgs {
            ssh_key: vec!["-".into()],
            password_stdin: true,
            ..ProvisionArgs::default()
        };
        assert!(request(&two_stdin).is_err());
        let root = ProvisionArgs {
            user: Some("root".into()),
            ..ProvisionArgs::default()
        };
        assert!(request(&root).is_err());
        let data = file("packages: []\n");
        let bad_data = ProvisionArgs {
            cloud_init: Some(data.path().into()),
            ..ProvisionArgs::default()
        };
        assert!(request(&bad_data).is_err());
    }
}
