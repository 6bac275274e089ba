//! kuduhook: the deployment command Kudu runs on `git push` to Azure App Service, for Python
//! web apps. It replaces the generated `deploy.cmd` with staged steps: sync the repository into
//! the site, detect the Python runtime, validate (or rebuild) the env, install requirements,
//! and the user's own steps from `deploy/steps.json`.
//!
//! A map of the crate, in the order a deployment uses it:
//! - [`cli`]: the command line; [`kudu`]: Kudu's environment and `.deployment`;
//!   [`config`]: settings precedence; [`steps_file`]: `deploy/steps.json`.
//! - [`pipeline`]: runs the steps in [`steps`], one module per step.
//! - [`python`], [`platform`], [`manifest`], [`env_record`], [`process`], [`paths`]: what the
//!   steps use.
//! - [`errors`]: every failure and its text; [`logging`]: the deployment log's format.

use std::process::ExitCode;

use tracing::{error, info};

pub mod cli;
pub mod config;
pub mod env_record;
pub mod env_store;
pub mod errors;
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
    }
}

fn sync_command(args: &cli::SyncArgs) -> ExitCode {
    let env = kudu::KuduEnv::from_process();
    let options = match config::sync_options(args, &env) {
        Ok(options) => options,
        Err(e) => {
            report(&e, errors::site_state::UNTOUCHED);
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
            report(&failure.error, state);
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
                errors::site_state::UNTOUCHED,
            );
            return ExitCode::FAILURE;
        }
    };
    let config = match config::DeployConfig::resolve(args, env, &cwd) {
        Ok(config) => config,
        Err(e) => {
            report(&e, errors::site_state::UNTOUCHED);
            return ExitCode::FAILURE;
        }
    };
    match pipeline::deploy(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            report(&failure.error, failure.state);
            ExitCode::FAILURE
        }
    }
}

fn report(error: &DeployError, state: &str) {
    let e = error.explain();
    error!("{}\n  why: {}\n  fix: {}\n  {state}", e.what, e.why, e.fix);
}
