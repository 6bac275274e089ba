//! `kuduhook deploy`: what Kudu runs. Resolves the settings, runs the pipeline, and reports.

use std::process::ExitCode;

use super::report;
use crate::cli::DeployArgs;
use crate::config;
use crate::ground::error::{DeployError, site_state};
use crate::ground::paths;
use crate::pipeline;
use crate::release::record;
use crate::settings::kudu;

pub fn command(args: &DeployArgs) -> ExitCode {
    let env = kudu::KuduEnv::from_process();
    let cwd = match std::env::current_dir() {
        Ok(cwd) => cwd,
        Err(e) => {
            report(
                &DeployError::io("read the current folder", ".", e),
                Some(site_state::UNTOUCHED),
            );
            return ExitCode::FAILURE;
        }
    };
    let config = match config::DeployConfig::resolve(&args.into(), env.clone(), &cwd) {
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
                record::DeploymentRecord::record_early_failure(
                    &paths::normalize(&cwd.join(source)),
                    &target,
                    env.get(kudu::var::SCM_COMMIT_ID),
                    &e,
                    site_state::UNTOUCHED,
                );
            }
            report(&e, Some(site_state::UNTOUCHED));
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
