//! The command line: what `kuduhook --help` shows. Parsing only; `lib.rs` acts on it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Deploy a Python web app to Azure App Service on `git push`: sync, pick the Python, keep the
/// env right, install requirements, run your own steps.
#[derive(Debug, Parser)]
#[command(name = "kuduhook", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the deployment pipeline (what `.deployment` runs on every push).
    ///
    /// Inputs come from Kudu's environment (DEPLOYMENT_SOURCE, DEPLOYMENT_TARGET,
    /// NEXT_MANIFEST_PATH, PREVIOUS_MANIFEST_PATH, IN_PLACE_DEPLOYMENT, IGNORE_MANIFEST,
    /// SCM_COMMIT_ID) and the app settings; flags override them. Run by hand with none of them,
    /// it deploys the current folder into ../artifacts/wwwroot, like deploy.cmd did.
    Deploy(DeployArgs),
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
