//! `kuduhook sync`: the KuduSync drop-in (`KUDU_SYNC_CMD`), KuduSync's flags and nothing else.

use std::process::ExitCode;

use tracing::info;

use super::report;
use crate::cli::{self, SyncArgs};
use crate::config;
use crate::ground::error::DeployError;
use crate::ground::error::site_state;
use crate::ground::logging;
use crate::settings::kudu::{self, KuduEnv};
use crate::settings::{Origin, SettingsError, name};
use crate::sync;
use crate::sync::{DEFAULT_FULL_COMPARE, SyncOptions, split_list};

pub fn command(args: &cli::SyncArgs) -> ExitCode {
    let env = kudu::KuduEnv::from_process();
    let options = match options(args, &env) {
        Ok(options) => options,
        Err(e) => {
            report(&e, Some(site_state::UNTOUCHED));
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
                site_state::SYNC_PARTIAL
            } else {
                site_state::UNTOUCHED
            };
            report(&failure.error, Some(state));
            ExitCode::FAILURE
        }
    }
}

/// `kuduhook sync`'s options: KuduSync's flags, nothing else, except Kudu's idle timeout, which
/// sets how often a long sync prints progress.
fn options(args: &SyncArgs, env: &KuduEnv) -> Result<SyncOptions, DeployError> {
    if !args.from.is_dir() {
        return Err(SettingsError::SourceMissing {
            source: args.from.clone(),
            origin: Origin::Flag("-f"),
        }
        .into());
    }
    sync::check_not_nested(&args.from, &args.to)?;
    let mut options = SyncOptions::new(&args.from, &args.to);
    options.previous_manifest = args.previous_manifest.clone();
    options.next_manifest = args.next_manifest.clone();
    let list = |value: &Option<String>| value.as_deref().map(split_list).unwrap_or_default();
    options.ignore = config::patterns(&[], &list(&args.ignore), &Origin::Flag("-i"))?;
    options.full_compare = config::patterns(
        &DEFAULT_FULL_COMPARE,
        &list(&args.full_compare),
        &Origin::Flag("--full-compare"),
    )?;
    options.checksum = args.checksum;
    options.ignore_manifest = args.ignore_manifest;
    options.outside_links = args.outside_links;
    options.what_if = args.what_if;
    options.listed_changes = match (args.quiet, args.verbose) {
        (true, _) => 0,
        (false, Some(n)) => n,
        (false, None) => usize::MAX,
    };
    options.progress_interval = config::progress_interval(config::idle_timeout(env));
    // With both manifests, what the last sync did is known: a redeploy is planned from git's
    // diff or the record of the files it copied, without walking the target, unless
    // KUDUHOOK_SYNC_VERIFY=full asks for the walk.
    let walk_asked = env
        .get(name::KUDUHOOK_SYNC_VERIFY)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("full"));
    let manifests = options.previous_manifest.is_some() && options.next_manifest.is_some();
    options.delta = sync::DeltaInputs {
        enabled: manifests && !walk_asked,
        disabled_because: walk_asked
            .then(|| format!("asked for ({}=full)", name::KUDUHOOK_SYNC_VERIFY)),
        commit_id: env.get(kudu::var::SCM_COMMIT_ID).map(str::to_string),
        ..sync::DeltaInputs::default()
    };
    Ok(options)
}
