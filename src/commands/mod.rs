//! The commands around a deployment, on top of the house: `deploy` (the pipeline), `sync` (the
//! KuduSync drop-in), `status`, `rollback`, `init` and `rehearse` (a local App Service). Each
//! turns the command line into its module's options, runs it, and reports a failure as what,
//! why and fix, then what the site serves now.

use std::process::ExitCode;

use tracing::{error, info};

use crate::cli::{self, Cli, Command};
use crate::config;
use crate::ground::error::{DeployError, site_state};
use crate::ground::paths;
use crate::release;
use crate::settings::{Platform, kudu};

pub mod deploy;
pub mod error;
pub mod init;
pub mod rehearsal;
pub mod status;
pub mod sync;

/// Runs a parsed command line; the exit code is what Kudu judges the deployment by.
pub fn run(cli: Cli) -> ExitCode {
    crate::ground::logging::init();
    match cli.command {
        Command::Deploy(args) => deploy::command(&args),
        Command::Sync(args) => sync::command(&args),
        Command::Status(args) => status_command(&args),
        Command::Rollback(args) => rollback_command(&args),
        Command::Init(args) => init_command(&args),
        Command::Upgrade(args) => upgrade_command(&args),
        Command::Rehearse(args) => rehearse_command(&args),
        Command::RehearseReceive(args) => rehearse_receive(&args),
    }
}

fn init_command(args: &cli::InitArgs) -> ExitCode {
    let cwd = std::env::current_dir().unwrap_or_default();
    let platform = match args.platform {
        cli::SitePlatform::Linux => Platform::Linux,
        cli::SitePlatform::Windows => Platform::Windows,
    };
    let running = std::env::current_exe().unwrap_or_else(|_| "kuduhook".into());
    let launcher = match args.launcher {
        true => match init::launcher::resolve(env!("CARGO_PKG_VERSION"), platform) {
            Ok(pin) => Some(pin),
            Err(e) => {
                report(&e, None);
                return ExitCode::FAILURE;
            }
        },
        false => None,
    };
    let options = init::InitOptions {
        app: paths::normalize(&cwd.join(args.app.clone().unwrap_or_default())),
        platform,
        binary: args
            .binary
            .clone()
            .unwrap_or_else(|| init::default_binary(&running, platform)),
        binary_given: args.binary.is_some(),
        launcher,
        force: args.force,
    };
    let result = init::plan(&options).and_then(|plan| {
        let written = init::write(&options, &plan);
        info!(
            "{}",
            init::describe(&options, &plan, written.is_ok()).trim_end()
        );
        written
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e, None);
            ExitCode::FAILURE
        }
    }
}

fn upgrade_command(args: &cli::UpgradeArgs) -> ExitCode {
    let cwd = std::env::current_dir().unwrap_or_default();
    let app = paths::normalize(&cwd.join(args.app.clone().unwrap_or_default()));
    let running = std::env::current_exe().unwrap_or_else(|_| "kuduhook".into());
    let version = args.to.as_deref().unwrap_or(env!("CARGO_PKG_VERSION"));
    match init::upgrade(&app, &running, version) {
        Ok(said) => {
            info!("{said}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            report(&e, None);
            ExitCode::FAILURE
        }
    }
}

fn rehearse_command(args: &cli::RehearseArgs) -> ExitCode {
    let cwd = std::env::current_dir().unwrap_or_default();
    let name = cwd
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "app".into());
    let root = match &args.site {
        Some(site) => paths::normalize(&cwd.join(site)),
        None => paths::normalize(&cwd.join("..").join(format!("{name}.appservice"))),
    };
    if args.serve {
        let site = rehearsal::LocalSite::new(&root);
        let served = rehearsal::serve::plan(&site, args.port, args.python.as_deref())
            .and_then(|start| rehearsal::serve::serve(&start));
        return match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                report(&e, None);
                ExitCode::FAILURE
            }
        };
    }
    let zip = args
        .zip
        .as_ref()
        .map(|zip| paths::normalize(&cwd.join(zip)));
    if let Some(zip) = zip.as_ref().filter(|zip| !zip.exists()) {
        report(
            &error::CommandError::ZipMissing { path: zip.clone() }.into(),
            None,
        );
        return ExitCode::FAILURE;
    }
    let binary = std::env::current_exe().unwrap_or_else(|_| "kuduhook".into());
    // A zip deployment needs no git remote.
    let remote = args.zip.is_none().then_some(args.remote.as_str());
    match (rehearsal::setup(&root, &binary, &cwd, remote), &zip) {
        (Ok(_), Some(zip)) => match rehearsal::receive::deploy_zip(&root, zip, args.clean) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                report(&e, Some(rehearsal::receive::KEEPS_SERVING));
                ExitCode::FAILURE
            }
        },
        (Ok(done), None) => {
            info!("{}", rehearsal::describe(&done, &binary));
            ExitCode::SUCCESS
        }
        (Err(e), _) => {
            report(&e, None);
            ExitCode::FAILURE
        }
    }
}

fn rehearse_receive(args: &cli::RehearseReceiveArgs) -> ExitCode {
    let mut input = String::new();
    let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut input);
    let pushed = rehearsal::receive::parse_pushed(&input);
    match rehearsal::receive::receive(&args.site, &pushed) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            report(&e, Some(rehearsal::receive::KEEPS_SERVING));
            info!("{}", rehearsal::receive::FAILED_LINE);
            ExitCode::FAILURE
        }
    }
}

fn status_command(args: &cli::StatusArgs) -> ExitCode {
    let env = kudu::KuduEnv::from_process();
    let cwd = std::env::current_dir().unwrap_or_default();
    let target = config::target_of(args.target.as_deref(), &env, &cwd);
    match status::read(&target, Platform::host(), &env) {
        Ok(status) => {
            let text = match args.json {
                true => {
                    serde_json::to_string_pretty(&status).expect("the status serializes") + "\n"
                }
                false => status::render(&status),
            };
            // A closed pipe (`kuduhook status | head`) is not an error.
            let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            report(&e, None);
            ExitCode::FAILURE
        }
    }
}

fn rollback_command(args: &cli::RollbackArgs) -> ExitCode {
    let env = kudu::KuduEnv::from_process();
    let cwd = std::env::current_dir().unwrap_or_default();
    let options = release::rollback::RollbackOptions {
        target: config::target_of(args.target.as_deref(), &env, &cwd),
        to: args.to.clone(),
        platform: Platform::host(),
        lock_wait: crate::env::lock::DEFAULT_LOCK_WAIT,
    };
    match release::rollback::rollback(&options) {
        Ok(_) => ExitCode::SUCCESS,
        Err(failure) => {
            let state = match failure.changed {
                true => site_state::ROLLBACK_FAILED,
                false => site_state::ROLLBACK_REFUSED,
            };
            report(&failure.error, Some(state));
            ExitCode::FAILURE
        }
    }
}

/// Prints an error as what, why and fix; for a command that changes a site, then what the
/// site serves now.
pub fn report(error: &DeployError, state: Option<&str>) {
    let e = error.explain();
    let state = state.map(|s| format!("\n  {s}")).unwrap_or_default();
    error!("{}\n  why: {}\n  fix: {}{state}", e.what, e.why, e.fix);
}
