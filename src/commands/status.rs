//! `kuduhook status`: what a user asks when a deployment surprised them. Which Python the env
//! runs and from which interpreter, when and why the env was last built, what was installed
//! into it and with what, and the last deployment's steps with their outcomes and timings.
//!
//! It only reads: the deployment record ([`crate::release::record`]), the env's own record
//! ([`crate::env::record`]) and the env's `dist-info` folders.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::env::record::{EnvRecord, now_unix};
use crate::ground::error::DeployError;
use crate::ground::logging::{ago, short_commit, utc};
use crate::platform::entry;
use crate::platform::linux_start::{self, StartPlan};
use crate::python::packages::{self, Packages};
use crate::release::Releases;
use crate::release::error::ReleaseError;
use crate::release::record::DeploymentRecord;
use crate::release::space::SpaceReport;
use crate::settings::Platform;
use crate::settings::kudu::{KuduEnv, var};

/// Everything `status` shows; `--json` prints it as is.
#[derive(Debug, Serialize)]
pub struct Status {
    pub target: PathBuf,
    pub env: EnvStatus,
    /// How App Service Linux will start the site (Linux sites only).
    pub platform_start: Option<StartPlan>,
    pub last_deployment: DeploymentRecord,
    /// The releases kept for `kuduhook rollback`, and the last rollback.
    pub releases: Releases,
    /// What the deployments take on the site's disk, and the filesystem's space.
    pub space: SpaceReport,
}

#[derive(Debug, Serialize)]
pub struct EnvStatus {
    /// The path the site runs its env from (`wwwroot/env`).
    pub path: PathBuf,
    /// Where that path leads when it is a link (the env kuduhook built).
    pub resolves_to: Option<PathBuf>,
    pub exists: bool,
    /// The env's record; `None` for an env kuduhook did not build (or no env).
    pub record: Option<EnvRecord>,
    pub packages: Packages,
}

/// Reads the status of the site served from `target`.
/// `settings` is the environment `kuduhook status` runs in (Kudu's console has the app settings):
/// the site's stack (`FRAMEWORK_VERSION`) and `PYTHON_DISABLE_FASTAPI_DETECTION` decide the
/// entry as the platform will.
pub fn read(target: &Path, platform: Platform, settings: &KuduEnv) -> Result<Status, DeployError> {
    let record = DeploymentRecord::read(target)
        .map_err(|e| {
            DeployError::io(
                "read the deployment record",
                crate::release::record::path(target),
                e,
            )
        })?
        .ok_or_else(|| ReleaseError::NoDeploymentRecord {
            target: target.to_path_buf(),
            record: crate::release::record::path(target),
        })?;
    let path = record.env.clone();
    let resolves_to = std::fs::read_link(&path)
        .ok()
        .map(|link| match link.is_absolute() {
            true => link,
            false => crate::ground::paths::normalize(&path.parent().unwrap_or(target).join(link)),
        });
    let env = EnvStatus {
        exists: path.join("pyvenv.cfg").is_file(),
        record: EnvRecord::read(&path),
        packages: packages::installed(&path, platform),
        resolves_to,
        path,
    };
    let space = SpaceReport::measure(
        target,
        &env.path,
        linux_start::platform_env(target)
            .compressed
            .map(|a| target.join(a))
            .as_deref(),
        true,
    );
    Ok(Status {
        target: target.to_path_buf(),
        space,
        env,
        platform_start: (platform == Platform::Linux).then(|| {
            linux_start::start_plan(
                target,
                settings
                    .get(var::FRAMEWORK_VERSION)
                    .and_then(crate::python::parse_setting),
                entry::disables_fastapi(settings.get(entry::DISABLE_FASTAPI)),
            )
        }),
        last_deployment: record,
        releases: Releases::read(target),
    })
}

/// How App Service Linux will start the site.
fn render_start(out: &mut String, start: &StartPlan) {
    let entry = match &start.entry {
        Some(entry) => format!("gunicorn {} (found: {})", entry.module, entry.found),
        None => "no entry found".into(),
    };
    let env = &start.env;
    let form = match &env.compressed {
        Some(file) => format!("extracted from {file} to /{} on local disk", env.name),
        None => format!("{}/", env.name),
    };
    let _ = writeln!(
        out,
        "Platform start (App Service Linux, no startup command): {entry}\n  env {form} (named by \
         {}), its site-packages on PYTHONPATH",
        env.named_by
    );
    for warning in &start.warnings {
        let _ = writeln!(out, "  warning: {warning}");
    }
}

/// The status as a user reads it.
pub fn render(status: &Status) -> String {
    let now = now_unix();
    let mut out = String::new();
    let env = &status.env;
    let _ = writeln!(out, "Site: {}", status.target.display());
    let link = env
        .resolves_to
        .as_ref()
        .map(|to| format!(" -> {}", to.display()))
        .unwrap_or_default();
    if !env.exists {
        let _ = writeln!(
            out,
            "Env: none at {} (the app has no requirements file, or the env was removed)",
            env.path.display()
        );
    } else {
        let _ = writeln!(out, "Env: {}{link}", env.path.display());
        match &env.record {
            None => {
                let _ = writeln!(
                    out,
                    "  not built by kuduhook (no record in it): the next deployment rebuilds it"
                );
            }
            Some(r) => {
                let _ = writeln!(
                    out,
                    "  Python {} from {}",
                    r.python,
                    r.interpreter.display()
                );
                let _ = writeln!(
                    out,
                    "  built {} ({}): {}",
                    utc(r.created_unix),
                    ago(r.created_unix, now),
                    r.reason
                );
                if let Some(token) = &r.rebuild_token {
                    let _ = writeln!(out, "  built for KUDUHOOK_FORCE_ENV_REBUILD={token}");
                }
                match &r.install {
                    Some(i) => {
                        let _ = writeln!(
                            out,
                            "  {} installed {} ({}) with {}, fingerprint {}",
                            i.source.as_deref().unwrap_or("requirements"),
                            utc(i.installed_unix),
                            ago(i.installed_unix, now),
                            i.installer,
                            short_commit(&i.fingerprint)
                        );
                    }
                    None => {
                        let _ = writeln!(out, "  no requirements installed into it yet");
                    }
                }
            }
        }
        let listed: Vec<String> = env
            .packages
            .iter()
            .map(|(name, version)| format!("{name} {version}"))
            .collect();
        let _ = writeln!(
            out,
            "  packages ({}): {}",
            listed.len(),
            if listed.is_empty() {
                "none".to_string()
            } else {
                listed.join(", ")
            }
        );
    }

    if let Some(start) = &status.platform_start {
        render_start(&mut out, start);
    }

    render_releases(&mut out, &status.releases, now);
    let _ = writeln!(out, "Space: {}", status.space.summary());
    if let Some(warning) = status.space.warning() {
        let _ = writeln!(out, "{warning}");
    }

    let d = &status.last_deployment;
    let commit = d
        .commit
        .as_deref()
        .map(|c| format!("commit {}", short_commit(c)))
        .unwrap_or_else(|| "no commit id (run by hand)".into());
    let _ = writeln!(
        out,
        "Last deployment: {commit}, {} {} ({}), took {:.2}s, kuduhook {}",
        if d.succeeded { "succeeded" } else { "FAILED" },
        utc(d.started_unix),
        ago(d.started_unix, now),
        d.seconds,
        d.kuduhook_version
    );
    if let Some(error) = &d.error {
        let _ = writeln!(out, "  error: {error}");
    }
    if let Some(state) = &d.site_state {
        let _ = writeln!(out, "  {state}");
    }
    if d.steps.is_empty() {
        let _ = writeln!(out, "  no step ran: it failed before changing anything");
    }
    let width = d.steps.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for (i, step) in d.steps.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {}. {:width$}  {:8} {:>7.2}s  {}",
            i + 1,
            step.name,
            step.outcome.word(),
            step.seconds,
            step.detail
        );
    }
    out
}

/// The releases kept, and a rollback since the last deployment.
fn render_releases(out: &mut String, releases: &Releases, now: u64) {
    let commit = |c: Option<&str>| -> String {
        c.map(|c| short_commit(c).to_string())
            .unwrap_or_else(|| "a deployment without a commit".into())
    };
    // Cleared by the next successful deployment.
    if let Some(r) = &releases.last_rollback {
        let _ = writeln!(
            out,
            "ROLLED BACK {} ({}) from {} to {}, took {:.2}s: {}",
            utc(r.at_unix),
            ago(r.at_unix, now),
            commit(r.from_commit.as_deref()),
            commit(r.to_commit.as_deref()),
            r.seconds,
            r.what
        );
    }
    // A release without a commit (deployed by hand) is named by when it was deployed.
    let name = |r: &crate::release::ReleaseEntry| match &r.commit {
        Some(c) => short_commit(c).to_string(),
        None => format!("the deployment of {}", utc(r.deployed_unix)),
    };
    let kept: Vec<String> = releases
        .releases
        .iter()
        .rev()
        .enumerate()
        .map(|(i, r)| {
            format!(
                "{} ({}deployed {})",
                name(r),
                if i == 0 { "live, " } else { "" },
                ago(r.deployed_unix, now)
            )
        })
        .collect();
    match releases.releases.len() {
        0 => {}
        1 => {
            let _ = writeln!(
                out,
                "Releases kept: {} (none before it to roll back to)",
                kept[0]
            );
        }
        n => {
            let _ = writeln!(
                out,
                "Releases kept, newest first: {}; `kuduhook rollback` goes back to {}",
                kept.join(", "),
                name(&releases.releases[n - 2])
            );
        }
    }
}
