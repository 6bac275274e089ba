//! The command line: what `kuduhook --help` shows. Parsing only; `lib.rs` acts on it.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::sync::OutsideLinks;

/// Deploy a Python web app to Azure App Service on `git push`: sync, pick the Python, keep the
/// env right, install requirements, run your own steps.
#[derive(Debug, Parser)]
#[command(name = "kuduhook", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the process's arguments. Run under the name `kudusync` (a copy or link of the
    /// binary), it is `kuduhook sync`: deploy scripts quote `"$KUDU_SYNC_CMD"` as one word, so
    /// that name is how it drops in for KuduSync.
    ///
    /// Run with no arguments by Kudu (its variables set), it is `kuduhook deploy`: Kudu makes a
    /// `.deployment` command executable only when it is a bare path into the repository
    /// (`./deploy/kuduhook`), which a zip made on Windows needs (it carries no modes).
    pub fn from_env() -> Cli {
        let mut args: Vec<OsString> = std::env::args_os().collect();
        if args.first().is_some_and(|a| invoked_as_kudusync(a)) {
            args.insert(1, "sync".into());
        } else if args.len() == 1 && run_by_kudu(|name| std::env::var_os(name).is_some()) {
            args.push("deploy".into());
        }
        Cli::parse_from(args)
    }
}

/// Whether Kudu's deployment variables are set (`is_set` asks the environment).
pub fn run_by_kudu(is_set: impl Fn(&str) -> bool) -> bool {
    use crate::settings::kudu::var;
    is_set(var::DEPLOYMENT_SOURCE) && is_set(var::DEPLOYMENT_TARGET)
}

fn invoked_as_kudusync(program: &OsStr) -> bool {
    Path::new(program)
        .file_stem()
        .is_some_and(|stem| stem.eq_ignore_ascii_case("kudusync"))
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make a repository deploy with kuduhook (.deployment, deploy/ and the binary).
    ///
    /// Writes .deployment, deploy/steps.json, deploy/README.md and the kuduhook binary in
    /// deploy/.
    ///
    /// An old KuduScript deploy.cmd or deploy.sh is read: init says which step replaces each of
    /// its sections, turns the lines you added into run steps, and lists those it could not
    /// translate. Nothing is overwritten without --force. With --launcher, no binary is
    /// committed: a launcher pinned to this kuduhook's version (and its wheel's SHA-256)
    /// downloads it at the first deployment, from the package index the app's requirements
    /// come from.
    Init(InitArgs),

    /// Change the kuduhook a repository runs: the launcher's pin, or the binary in deploy/.
    ///
    /// With a launcher (deploy/launcher.py), pins --to VERSION (default: this kuduhook's
    /// version), its wheel and the wheel's SHA-256, asked of the package index; with a
    /// committed binary, replaces it with this kuduhook's for the same platform. Commit and
    /// push the change to deploy with it.
    Upgrade(UpgradeArgs),

    /// Set up a local App Service to rehearse `git push` on, and add it as a git remote; or
    /// deploy a zip to it (--zip).
    ///
    /// Creates (or refreshes) a folder laid out like App Service's /home: a repository to push
    /// to whose hook deploys the way Kudu does (`.deployment`, app settings from a file, Kudu's
    /// variables and manifests, no TTY, the idle kill), and the site it deploys into. With
    /// --zip, deploys a zip (or a folder) to it the way Kudu deploys one from `az webapp deploy`.
    Rehearse(RehearseArgs),

    /// Run the deployment pipeline (what `.deployment` runs on every push).
    ///
    /// Inputs come from Kudu's environment (DEPLOYMENT_SOURCE, DEPLOYMENT_TARGET,
    /// NEXT_MANIFEST_PATH, PREVIOUS_MANIFEST_PATH, IN_PLACE_DEPLOYMENT, IGNORE_MANIFEST,
    /// SCM_COMMIT_ID) and the app settings; flags override them. Run by hand with none of them,
    /// it deploys the current folder into ../artifacts/wwwroot, like deploy.cmd did.
    Deploy(DeployArgs),

    /// Show what the site runs and why, and what the last deployment did.
    ///
    /// The env's Python and interpreter, when and why it was last built, what was installed
    /// with which installer, and the last deployment's steps with outcomes and timings.
    Status(StatusArgs),

    /// Bring back the previous successful deployment's files and env, in one step.
    ///
    /// Every deployment keeps what its sync replaced and the env it replaced (the last
    /// KUDUHOOK_KEEP_RELEASES deployments, default 2: the live one and the one before it).
    /// Rolling back puts those back under the deploy lock; `kuduhook status` then says the
    /// site was rolled back, and the next `git push` deploys on top of it.
    Rollback(RollbackArgs),

    /// Sync a folder into another, as KuduSync does: a drop-in for KUDU_SYNC_CMD.
    ///
    /// Takes KuduSync's flags. Copies what changed (size or modification time; content for
    /// web.config and --full-compare names, or everything with --checksum), deletes what the
    /// previous manifest lists and the source lacks, keeps files the app wrote, and writes the
    /// next manifest. Reads and writes manifests KuduSync understands.
    Sync(SyncArgs),

    /// What the local App Service's receive hook runs (reads git's ref lines on stdin).
    #[command(hide = true)]
    RehearseReceive(RehearseReceiveArgs),
}

#[derive(Debug, Clone, Args)]
pub struct InitArgs {
    /// The app's repository [default: the current folder]
    #[arg(value_name = "APP_DIR")]
    pub app: Option<PathBuf>,

    /// The site's platform: the binary copied and the .deployment command are for it
    #[arg(long, value_enum, default_value_t = SitePlatform::Linux)]
    pub platform: SitePlatform,

    /// The kuduhook binary to copy into deploy/ [default: this one]
    #[arg(long, value_name = "FILE")]
    pub binary: Option<PathBuf>,

    /// Commit a launcher pinned to this kuduhook's version instead of the binary
    #[arg(long, conflicts_with = "binary")]
    pub launcher: bool,

    /// Replace files that exist with other content
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Args)]
pub struct UpgradeArgs {
    /// The app's repository [default: the current folder]
    #[arg(value_name = "APP_DIR")]
    pub app: Option<PathBuf>,

    /// The kuduhook version a launcher pins [default: this kuduhook's]
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
}

/// The App Service platform a site runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SitePlatform {
    Linux,
    Windows,
}

#[derive(Debug, Clone, Default, Args)]
pub struct RehearseArgs {
    /// Where the local App Service lives [default: ../<repository name>.appservice]
    #[arg(long, value_name = "DIR")]
    pub site: Option<PathBuf>,

    /// The git remote to add to the repository in the current folder
    #[arg(long, value_name = "NAME", default_value = "rehearsal")]
    pub remote: String,

    /// Start the deployed site as App Service Linux does (gunicorn, the env's packages on
    /// PYTHONPATH) and serve it until stopped, instead of setting up
    #[arg(long)]
    pub serve: bool,

    /// The port --serve listens on (127.0.0.1)
    #[arg(long, value_name = "PORT", default_value_t = 8000, requires = "serve")]
    pub port: u16,

    /// The Python that plays App Service's image for --serve (it needs gunicorn) [default:
    /// /opt/python/X.Y, else the interpreter the env was built from]
    #[arg(long, value_name = "PATH", requires = "serve")]
    pub python: Option<PathBuf>,

    /// Deploy a zip (or a folder, zipped as a tool on Windows zips it: no modes, 2-second
    /// times) as `az webapp deploy` and GitHub Actions do: extracted into a fresh folder that
    /// is DEPLOYMENT_SOURCE, then `.deployment`'s command runs
    #[arg(long, value_name = "ZIP|DIR", conflicts_with = "serve")]
    pub zip: Option<PathBuf>,

    /// With --zip: a clean publish (IGNORE_MANIFEST=1): what the zip lacks leaves the site
    #[arg(long, requires = "zip")]
    pub clean: bool,
}

#[derive(Debug, Clone, Default, Args)]
pub struct RehearseReceiveArgs {
    #[arg(long, value_name = "DIR")]
    pub site: PathBuf,
}

#[derive(Debug, Clone, Default, Args)]
pub struct StatusArgs {
    /// The site's folder [default: DEPLOYMENT_TARGET, else ../artifacts/wwwroot]
    #[arg(long, value_name = "DIR")]
    pub target: Option<PathBuf>,

    /// Print the status as JSON, for scripts
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Default, Args)]
pub struct RollbackArgs {
    /// The site's folder [default: DEPLOYMENT_TARGET, else ../artifacts/wwwroot]
    #[arg(long, value_name = "DIR")]
    pub target: Option<PathBuf>,

    /// Go back to the kept release of this commit (a prefix is enough) [default: the one
    /// before the live one]
    #[arg(long, value_name = "COMMIT")]
    pub to: Option<String>,
}

#[derive(Debug, Clone, Default, Args)]
pub struct SyncArgs {
    /// The folder to sync from
    #[arg(
        short = 'f',
        long = "from",
        visible_alias = "fromDir",
        value_name = "DIR"
    )]
    pub from: PathBuf,

    /// The folder to sync into
    #[arg(short = 't', long = "to", visible_alias = "toDir", value_name = "DIR")]
    pub to: PathBuf,

    /// Write the manifest of what was synced here
    #[arg(
        short = 'n',
        long = "next-manifest",
        visible_alias = "nextManifest",
        value_name = "FILE"
    )]
    pub next_manifest: Option<PathBuf>,

    /// The last successful sync's manifest: what may be deleted. A missing file means a first
    /// deployment (Kudu's hostingstart.html goes).
    #[arg(
        short = 'p',
        long = "previous-manifest",
        visible_alias = "previousManifest",
        value_name = "FILE"
    )]
    pub previous_manifest: Option<PathBuf>,

    /// Patterns to leave out, separated by ';' (".git;.hg;*.pyc"): a name at any depth, or a
    /// path from the root with '/'; globs allowed, case ignored
    #[arg(short = 'i', long = "ignore", value_name = "PATTERNS")]
    pub ignore: Option<String>,

    /// Print no change lines and no summary (warnings and errors still show)
    #[arg(short = 'q', long = "quiet", conflicts_with = "verbose")]
    pub quiet: bool,

    /// List at most N changes, then progress lines [default: all]
    #[arg(short = 'v', long = "verbose", value_name = "N", num_args = 0..=1, default_missing_value = "18446744073709551615")]
    pub verbose: Option<usize>,

    /// Print what would change, and change nothing
    #[arg(short = 'w', long = "what-if", visible_alias = "whatIf")]
    pub what_if: bool,

    /// Ignore the previous manifest: delete whatever the source lacks (a clean deployment)
    #[arg(
        short = 'x',
        long = "ignore-manifest",
        visible_alias = "ignoreManifest"
    )]
    pub ignore_manifest: bool,

    /// Print how long the sync took, by phase
    #[arg(long)]
    pub perf: bool,

    /// Compare every same-size file by content, not modification time
    #[arg(long)]
    pub checksum: bool,

    /// More names to compare by content, separated by ';' (web.config always is)
    #[arg(long, value_name = "PATTERNS")]
    pub full_compare: Option<String>,

    /// What a link out of the source does: skip it with a warning, or fail before any change
    #[arg(long, value_enum, value_name = "WHAT", default_value_t = OutsideLinks::Skip)]
    pub outside_links: OutsideLinks,
}

#[derive(Debug, Clone, Default, Args)]
pub struct DeployArgs {
    /// The repository to deploy [default: DEPLOYMENT_SOURCE, else the current folder]
    #[arg(long, value_name = "DIR")]
    pub source: Option<PathBuf>,

    /// Where the site is served from [default: DEPLOYMENT_TARGET, else <source>/../artifacts/wwwroot]
    #[arg(long, value_name = "DIR")]
    pub target: Option<PathBuf>,

    /// The manifest this deployment writes [default: NEXT_MANIFEST_PATH, else <target>/../manifest]
    #[arg(long, value_name = "FILE")]
    pub next_manifest: Option<PathBuf>,

    /// The last successful deployment's manifest [default: PREVIOUS_MANIFEST_PATH, else <target>/../manifest]
    #[arg(long, value_name = "FILE")]
    pub previous_manifest: Option<PathBuf>,

    /// The Python to use: a version (3.12, 3.12.1) or an interpreter's path.
    /// Overrides PYTHON_VERSION, runtime.txt and .python-version.
    #[arg(long, value_name = "VERSION|PATH")]
    pub python: Option<String>,

    /// Delete and recreate the env on this deployment (like the KUDUHOOK_FORCE_ENV_REBUILD app setting).
    #[arg(long)]
    pub force_env_rebuild: bool,

    /// Print what each step would do, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl From<&DeployArgs> for crate::config::Flags {
    fn from(args: &DeployArgs) -> crate::config::Flags {
        crate::config::Flags {
            source: args.source.clone(),
            target: args.target.clone(),
            next_manifest: args.next_manifest.clone(),
            previous_manifest: args.previous_manifest.clone(),
            python: args.python.clone(),
            force_env_rebuild: args.force_env_rebuild,
            dry_run: args.dry_run,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_bare_by_kudu_it_deploys_and_by_hand_it_does_not() {
        let kudu = |name: &str| matches!(name, "DEPLOYMENT_SOURCE" | "DEPLOYMENT_TARGET");
        assert!(run_by_kudu(kudu));
        assert!(!run_by_kudu(|name| name == "DEPLOYMENT_TARGET"));
        assert!(!run_by_kudu(|_| false));
    }
}
