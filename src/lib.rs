//! kuduhook: the deployment command Kudu runs on `git push` to Azure App Service, for Python
//! web apps. It replaces the generated `deploy.cmd` with staged steps: sync the repository into
//! the site, detect the Python runtime, validate (or rebuild) the env, install requirements,
//! and the user's own steps from `deploy/steps.json`.
//!
//! A map of the crate, in the order a deployment uses it:
//! - [`cli`]: the command line; [`kudu`]: Kudu's environment and `.deployment`;
//!   [`config`]: settings precedence; [`steps_file`]: `deploy/steps.json`.
//! - [`pipeline`]: runs the steps in [`steps`], one module per step; [`release`]: what the
//!   site serves (going live, the releases kept, rolling back files and env, `kuduhook
//!   rollback`); [`sync`]: the sync with its undo log.
//! - [`dependencies`]: where the app's dependencies come from (requirements.txt, uv.lock,
//!   poetry.lock, Pipfile.lock, pyproject.toml); [`requirements`] and [`closure`]: what an
//!   exact env must hold and the removal of the rest; [`env_seed`]: pip for a new env without
//!   ensurepip; [`env_store`]: where envs are built and how they go live.
//! - [`python`], [`platform`], [`manifest`], [`env_record`], [`process`], [`paths`]: what the
//!   steps use.
//! - [`errors`]: every failure and its text; [`logging`]: the deployment log's format.
//! - Around a deployment: [`deploy_record`] and [`status`] (`kuduhook status`), [`rehearsal`]
//!   (a local App Service to push to), [`init`] (`kuduhook init`).

use std::process::ExitCode;

use tracing::{error, info};

pub mod cli;
pub mod closure;
pub mod config;
pub mod dependencies;
pub mod deploy_record;
pub mod env_record;
pub mod env_seed;
pub mod env_store;
pub mod errors;
pub mod init;
pub mod installer;
pub mod kudu;
pub mod lock;
pub mod logging;
pub mod manifest;
pub mod packages;
pub mod paths;
pub mod pipeline;
pub mod platform;
pub mod process;
pub mod python;
pub mod rehearsal;
pub mod release;
pub mod requirements;
pub mod status;
pub mod steps;
pub mod steps_file;
pub mod sync;

use cli::{Cli, Command, DeployArgs};
use errors::DeployError;

/// Runs a parsed command line; the exit code is what Kudu judges the deployment by.
pub fn run(cli: Cli) -> ExitCode {
    logging::init();
    match cli.command {
        Command::Deploy(args) => deploy(&args),
        Command::Sync(args) => sync_command(&args),
        Command::Status(args) => status_command(&args),
        Command::Rollback(args) => rollback_command(&args),
        Command::Init(args) => init_command(&args),
        Command::Rehearse(args) => rehearse_command(&args),
        Command::RehearseReceive(args) => rehearse_receive(&args),
    }
}

fn init_command(args: &cli::InitArgs) -> ExitCode {
    let cwd = std::env::current_dir().unwrap_or_default();
    let options = init::InitOptions {
        app: paths::normalize(&cwd.join(args.app.clone().unwrap_or_default())),
        platform: match args.platform {
            cli::SitePlatform::Linux => platform::Platform::Linux,
            cli::SitePlatform::Windows => platform::Platform::Windows,
        },
        binary: args
            .binary
            .clone()
            .or_else(|| std::env::current_exe().ok())
            .unwrap_or_else(|| "kuduhook".into()),
        binary_given: args.binary.is_some(),
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
    let binary = std::env::current_exe().unwrap_or_else(|_| "kuduhook".into());
    match rehearsal::setup(&root, &binary, &cwd, &args.remote) {
        Ok(done) => {
            info!("{}", rehearsal::describe(&done, &binary));
            ExitCode::SUCCESS
        }
        Err(e) => {
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
    match status::read(&target, platform::Platform::host()) {
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
        platform: platform::Platform::host(),
        lock_wait: config::DEFAULT_LOCK_WAIT,
    };
    match release::rollback::rollback(&options) {
        Ok(_) => ExitCode::SUCCESS,
        Err(failure) => {
            let state = match failure.changed {
                true => errors::site_state::ROLLBACK_FAILED,
                false => errors::site_state::ROLLBACK_REFUSED,
            };
            report(&failure.error, Some(state));
            ExitCode::FAILURE
        }
    }
}

fn sync_command(args: &cli::SyncArgs) -> ExitCode {
    let env = kudu::KuduEnv::from_process();
    let options = match config::sync_options(args, &env) {
        Ok(options) => options,
        Err(e) => {
            report(&e, Some(errors::site_state::UNTOUCHED));
            return ExitCode::FAILURE;
        }
    };
    if !args.quiet {
        info!(
            "kuduhook sync from '{}' to '{}'{}",
            options.from.display(),
            options.to.display(),
            if options.what_if {
                " (what-if: nothing is changed)"
            } else {
                ""
            }
        );
    }
    match sync::sync(&options) {
        Ok(report) => {
            if !args.quiet {
                info!("{}", report.summary());
            }
            if args.perf {
                info!(
                    "Operation took {:.3} seconds (walk and compare {}, changes {})",
                    (report.planning + report.applying).as_secs_f64(),
                    logging::seconds(report.planning),
                    logging::seconds(report.applying)
                );
            }
            ExitCode::SUCCESS
        }
        Err(failure) => {
            let state = if failure.target_changed {
                errors::site_state::SYNC_PARTIAL
            } else {
                errors::site_state::UNTOUCHED
            };
            report(&failure.error, Some(state));
            ExitCode::FAILURE
        }
    }
}

fn deploy(args: &DeployArgs) -> ExitCode {
    let env = kudu::KuduEnv::from_process();
    let cwd = match std::env::current_dir() {
        Ok(cwd) => cwd,
        Err(e) => {
            report(
                &DeployError::io("read the current folder", ".", e),
                Some(errors::site_state::UNTOUCHED),
            );
            return ExitCode::FAILURE;
        }
    };
    let config = match config::DeployConfig::resolve(args, env.clone(), &cwd) {
        Ok(config) => config,
        Err(e) => {
            // Recorded only for a site that was named (by Kudu or --target): a guessed one
            // may not be a site at all.
            let named = args.target.is_some() || env.path(kudu::var::DEPLOYMENT_TARGET).is_some();
            if named && !args.dry_run {
                let target = config::target_of(args.target.as_deref(), &env, &cwd);
                let source = args
                    .source
                    .clone()
                    .or_else(|| env.path(kudu::var::DEPLOYMENT_SOURCE))
                    .unwrap_or_else(|| cwd.clone());
                deploy_record::DeploymentRecord::record_early_failure(
                    &paths::normalize(&cwd.join(source)),
                    &target,
                    env.get(kudu::var::SCM_COMMIT_ID),
                    &e,
                    errors::site_state::UNTOUCHED,
                );
            }
            report(&e, Some(errors::site_state::UNTOUCHED));
            return ExitCode::FAILURE;
        }
    };
    match pipeline::deploy(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            report(&failure.error, Some(failure.state));
            ExitCode::FAILURE
        }
    }
}

/// Prints an error as what, why and fix; for a command that changes a site, then what the
/// site serves now.
fn report(error: &DeployError, state: Option<&str>) {
    let e = error.explain();
    let state = state.map(|s| format!("\n  {s}")).unwrap_or_default();
    error!("{}\n  why: {}\n  fix: {}{state}", e.what, e.why, e.fix);
}
