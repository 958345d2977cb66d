//! The verbs: one module per command, each a thin `run` that calls the API and prints.

mod console;
mod create;
mod create_seed;
mod events;
mod extend;
mod image_create;
mod image_import;
mod image_ls;
mod image_publish;
mod image_rm;
mod image_seal;
mod image_set;
mod image_show;
mod iso_attach;
mod iso_detach;
mod iso_ls;
mod iso_rm;
mod iso_show;
mod iso_upload;
mod login;
mod logout;
mod logs;
mod ls;
mod net_create;
mod net_ls;
mod net_rm;
mod net_show;
mod nic_add;
mod nic_rm;
mod pause;
mod port_add;
mod port_ls;
mod port_rm;
mod reboot;
mod resume;
mod rm;
mod set;
mod show;
mod ssh;
mod start;
mod status;
mod stop;
mod template_create;
mod template_ls;
mod template_rm;
mod template_show;
mod token_create;
mod token_ls;
mod token_revoke;
mod user_add;
mod user_ls;
mod user_passwd;
mod user_rm;
mod user_set;
mod user_show;
mod vnc;
mod wait;
mod wait_log;
mod wait_ready;
mod whoami;
mod wipe;

use std::future::Future;
use std::path::PathBuf;

use jsonrpsee::core::ClientError;
use jsonrpsee::ws_client::WsClient;
use vm_proto::names::format_size;
use vm_proto::types::{TokenSecret, Upload};
use vm_proto::{ApiError, ErrorCode};

use crate::cli::{
    Cli, Command, ImageCommand, IsoCommand, NetCommand, NicCommand, PortCommand, TemplateCommand,
    TokenCommand, UserCommand,
};
use crate::client::Credential;
use crate::error::CliError;
use crate::output::{emit, progress, Output};
use crate::upload;

/// What every verb needs: where the daemon is and how to print.
#[derive(Debug)]
pub struct Ctx {
    /// The resolved daemon socket.
    pub socket: PathBuf,
    /// `--token` or `$VMD_TOKEN`; `None`: the socket's peer credentials.
    pub token: Option<Credential>,
    /// Output settings.
    pub out: Output,
}

impl Ctx {
    /// Connects to the daemon with the credential, if any.
    pub async fn connect(&self) -> Result<WsClient, CliError> {
        crate::client::connect(&self.socket, self.token.as_ref()).await
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let ctx = Ctx {
        socket: crate::client::socket_path(cli.socket),
        token: Credential::new(cli.token),
        out: Output {
            format: cli.output,
            quiet: cli.quiet,
        },
    };
    match cli.command {
        Command::Status => status::run(&ctx).await,
        Command::Image(command) => image(&ctx, command).await,
        Command::Iso(command) => iso(&ctx, command).await,
        Command::Create(args) => create::run(&ctx, args).await,
        Command::Ls(args) => ls::run(&ctx, args).await,
        Command::Show(arg) => show::run(&ctx, arg.name).await,
        Command::Rm(args) => rm::run(&ctx, args.names).await,
        Command::Wipe(arg) => wipe::run(&ctx, arg.name).await,
        Command::Extend(args) => extend::run(&ctx, args).await,
        Command::Set(args) => set::run(&ctx, args).await,
        Command::Start(arg) => start::run(&ctx, arg.name).await,
        Command::Stop(args) => stop::run(&ctx, args).await,
        Command::Reboot(arg) => reboot::run(&ctx, arg.name).await,
        Command::Pause(arg) => pause::run(&ctx, arg.name).await,
        Command::Resume(arg) => resume::run(&ctx, arg.name).await,
        Command::Vnc(args) => vnc::run(&ctx, args).await,
        Command::Logs(args) => logs::run(&ctx, args).await,
        Command::Events(args) => events::run(&ctx, args).await,
        Command::Wait(args) => wait::run(&ctx, args).await,
        Command::Ssh(args) => ssh::run(&ctx, args).await,
        Command::Console(args) => console::run(&ctx, args).await,
        Command::Net(command) => net(&ctx, command).await,
        Command::Template(command) => template(&ctx, command).await,
        Command::Nic(command) => nic(&ctx, command).await,
        Command::Port(command) => port(&ctx, command).await,
        Command::User(command) => user(&ctx, command).await,
        Command::Token(command) => token(&ctx, command).await,
        Command::Login(args) => login::run(&ctx, args).await,
        Command::Logout => logout::run(&ctx).await,
        Command::Whoami => whoami::run(&ctx).await,
    }
}

/// Runs a `user` verb.
async fn user(ctx: &Ctx, command: UserCommand) -> Result<(), CliError> {
    match command {
        UserCommand::Add(args) => user_add::run(ctx, args).await,
        UserCommand::Ls => user_ls::run(ctx).await,
        UserCommand::Show(arg) => user_show::run(ctx, arg.name).await,
        UserCommand::Rm(args) => user_rm::run(ctx, args).await,
        UserCommand::Passwd(args) => user_passwd::run(ctx, args).await,
        UserCommand::Set(args) => user_set::run(ctx, args).await,
    }
}

/// Runs a `token` verb.
async fn token(ctx: &Ctx, command: TokenCommand) -> Result<(), CliError> {
    match command {
        TokenCommand::Create(args) => token_create::run(ctx, args).await,
        TokenCommand::Ls => token_ls::run(ctx).await,
        TokenCommand::Revoke(args) => token_revoke::run(ctx, args.id).await,
    }
}

/// Prints a new token's secret (`token create`, `login`): in table mode the secret alone on
/// stdout, so that `export VMD_TOKEN=$(vmctl login …)` works, and `note` on stderr unless
/// `-q`; in JSON mode the whole [`TokenSecret`].
fn print_secret(ctx: &Ctx, secret: &TokenSecret, note: &str) -> Result<(), CliError> {
    if ctx.out.is_json() {
        return emit(&crate::output::to_json(secret)?);
    }
    if !ctx.out.quiet {
        eprintln!("{note}");
    }
    emit(&secret.token)
}

/// Runs an `image` verb.
async fn image(ctx: &Ctx, command: ImageCommand) -> Result<(), CliError> {
    match command {
        ImageCommand::Import(args) => image_import::run(ctx, args).await,
        ImageCommand::Create(args) => image_create::run(ctx, args).await,
        ImageCommand::Seal(arg) => image_seal::run(ctx, arg.name).await,
        ImageCommand::Publish(args) => image_publish::run(ctx, args).await,
        ImageCommand::Ls => image_ls::run(ctx).await,
        ImageCommand::Show(arg) => image_show::run(ctx, arg.name).await,
        ImageCommand::Set(args) => image_set::run(ctx, args).await,
        ImageCommand::Rm(args) => image_rm::run(ctx, args.names).await,
    }
}

/// Runs an `iso` verb.
async fn iso(ctx: &Ctx, command: IsoCommand) -> Result<(), CliError> {
    match command {
        IsoCommand::Upload(args) => iso_upload::run(ctx, args).await,
        IsoCommand::Ls => iso_ls::run(ctx).await,
        IsoCommand::Show(arg) => iso_show::run(ctx, arg.name).await,
        IsoCommand::Rm(args) => iso_rm::run(ctx, args.names).await,
        IsoCommand::Attach(args) => iso_attach::run(ctx, args).await,
        IsoCommand::Detach(args) => iso_detach::run(ctx, args.vm).await,
    }
}

/// Runs a `net` verb.
async fn net(ctx: &Ctx, command: NetCommand) -> Result<(), CliError> {
    match command {
        NetCommand::Create(args) => net_create::run(ctx, args).await,
        NetCommand::Ls => net_ls::run(ctx).await,
        NetCommand::Show(arg) => net_show::run(ctx, arg.name).await,
        NetCommand::Rm(args) => net_rm::run(ctx, args.names).await,
    }
}

/// Runs a `template` verb.
async fn template(ctx: &Ctx, command: TemplateCommand) -> Result<(), CliError> {
    match command {
        TemplateCommand::Create(args) => template_create::run(ctx, args).await,
        TemplateCommand::Ls => template_ls::run(ctx).await,
        TemplateCommand::Show(arg) => template_show::run(ctx, arg.name).await,
        TemplateCommand::Rm(args) => template_rm::run(ctx, args.names).await,
    }
}

/// Runs a `nic` verb.
async fn nic(ctx: &Ctx, command: NicCommand) -> Result<(), CliError> {
    match command {
        NicCommand::Add(args) => nic_add::run(ctx, args).await,
        NicCommand::Rm(args) => nic_rm::run(ctx, args).await,
    }
}

/// Runs a `port` verb.
async fn port(ctx: &Ctx, command: PortCommand) -> Result<(), CliError> {
    match command {
        PortCommand::Add(args) => port_add::run(ctx, args).await,
        PortCommand::Ls(arg) => port_ls::run(ctx, arg.vm).await,
        PortCommand::Rm(args) => port_rm::run(ctx, args).await,
    }
}

/// Fails with `already_exists` when the `get` of a `kind` (`image`, `iso`) found `name`;
/// `not_found` is what an upload wants before it sends any byte.
fn ensure_absent<T>(found: Result<T, ClientError>, kind: &str, name: &str) -> Result<(), CliError> {
    match found.map_err(CliError::from) {
        Ok(_) => Err(ApiError::new(
            ErrorCode::AlreadyExists,
            format!("{kind} {name} already exists"),
        )
        .with_hint(format!(
            "choose another --name, or remove it first with `vmctl {kind} rm {name}`"
        ))
        .into()),
        Err(CliError::Api(err)) if err.kind() == ErrorCode::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

/// Streams `source` to the daemon (`PUT /v1/uploads`) with a progress bar on a terminal, then
/// in table mode without `-q` says on stderr `uploaded SIZE (sha256 HEX)` (a sparse upload's
/// digest comes with the imported image).
/// A daemon older than API 2.4 does not know sparse uploads: `source` then goes whole.
async fn stage(
    ctx: &Ctx,
    client: &WsClient,
    mut source: upload::Source,
) -> Result<Upload, CliError> {
    let info = vm_proto::api::VmdApiClient::system_info(client).await?;
    if !upload::knows_sparse(&info.api_version) {
        source.send_whole();
    }
    let bar = progress::bytes_bar(source.data_bytes(), ctx.out.quiet);
    let staged = upload::send(&ctx.socket, ctx.token.as_ref(), source, bar.clone()).await;
    bar.finish_and_clear();
    let staged = staged?;
    if !ctx.out.quiet && !ctx.out.is_json() {
        let sha256 = match staged.sha256_pending {
            true => "being computed; the import shows it",
            false => staged.sha256.as_str(),
        };
        eprintln!(
            "uploaded {} (sha256 {sha256})",
            format_size(staged.size_bytes)
        );
    }
    Ok(staged)
}

/// Removes `names` in order with `remove`, stopping at the first failure. One name is
/// confirmed like any removal; several are confirmed one line each as they go, or in JSON mode
/// as one array of what was removed (printed also when a later removal fails).
async fn remove_each<F, Fut>(
    ctx: &Ctx,
    kind: &str,
    names: Vec<String>,
    mut remove: F,
) -> Result<(), CliError>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<(), ClientError>>,
{
    if let [name] = names.as_slice() {
        remove(name.clone()).await?;
        return ctx.out.removed(kind, name);
    }
    let mut removed = Vec::new();
    let mut outcome = Ok(());
    for name in names {
        if let Err(err) = remove(name.clone()).await {
            outcome = Err(err.into());
            break;
        }
        if !ctx.out.is_json() {
            ctx.out.removed(kind, &name)?;
        }
        removed.push(name);
    }
    ctx.out.removed_all(kind, &removed)?;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Format;
    use jsonrpsee::types::ErrorObjectOwned;
    use std::cell::RefCell;

    #[tokio::test]
    async fn removal_stops_at_the_first_failure() {
        let ctx = Ctx {
            socket: PathBuf::from("/unused.sock"),
            token: None,
            out: Output {
                format: Format::Table,
                quiet: true,
            },
        };
        let asked = RefCell::new(Vec::new());
        let names = ["a", "b", "c"].map(String::from).to_vec();
        let err = remove_each(&ctx, "vm", names, |name| {
            asked.borrow_mut().push(name.clone());
            async move {
                if name != "b" {
                    return Ok(());
                }
                let code = ErrorCode::WrongState.code();
                Err(ClientError::Call(ErrorObjectOwned::owned(
                    code,
                    "vm b is running",
                    None::<()>,
                )))
            }
        })
        .await
        .expect_err("b fails");
        assert_eq!(err.exit_code(), 4);
        assert_eq!(asked.into_inner(), ["a", "b"]);
    }

    fn daemon_error(kind: ErrorCode) -> ClientError {
        let data = serde_json::json!({"kind": kind, "chain": ["boom"]});
        ClientError::Call(ErrorObjectOwned::owned(kind.code(), "boom", Some(data)))
    }

    #[test]
    fn existing_object_is_a_conflict() {
        let err = ensure_absent(Ok(()), "image", "deb").expect_err("exists");
        assert_eq!(err.exit_code(), 4);
        assert_eq!(err.to_string(), "image deb already exists");
        let err = ensure_absent(Ok(()), "iso", "deb").expect_err("exists");
        assert_eq!(err.to_string(), "iso deb already exists");
        assert!(err.hint().is_some_and(|h| h.contains("`vmctl iso rm deb`")));
        let absent = ensure_absent::<()>(Err(daemon_error(ErrorCode::NotFound)), "iso", "deb");
        assert!(absent.is_ok());
        let denied =
            ensure_absent::<()>(Err(daemon_error(ErrorCode::PermissionDenied)), "iso", "d");
        assert_eq!(denied.expect_err("denied").exit_code(), 7);
    }
}
