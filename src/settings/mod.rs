//! Settings as plain data, at the bottom of the house: where a value came from ([`Origin`]),
//! the names of the app settings kuduhook reads, the Kudu contract ([`kudu`]: Kudu's variables
//! and `.deployment`), the platform a site runs on, and `deploy/steps.json`'s schema.
//!
//! Nothing here knows what a setting does: each module above owns its options and their
//! defaults, and `config` (near the top) resolves them from these values.

use std::fmt;

pub mod error;
pub mod kudu;
pub mod platform;
pub mod steps_file;

pub use error::SettingsError;
pub use platform::Platform;

/// App settings (and `.deployment` keys) kuduhook reads.
pub mod name {
    pub const PYTHON_VERSION: &str = "PYTHON_VERSION";
    pub const KUDUHOOK_PYTHON: &str = "KUDUHOOK_PYTHON";
    pub const KUDUHOOK_FORCE_ENV_REBUILD: &str = "KUDUHOOK_FORCE_ENV_REBUILD";
    pub const KUDUHOOK_ENV_NAME: &str = "KUDUHOOK_ENV_NAME";
    pub const CUSTOM_REQUIREMENTSTXT_PATH: &str = "CUSTOM_REQUIREMENTSTXT_PATH";
    pub const KUDUHOOK_PIP_ARGS: &str = "KUDUHOOK_PIP_ARGS";
    pub const KUDUHOOK_DEPENDENCIES: &str = "KUDUHOOK_DEPENDENCIES";
    pub const KUDUHOOK_DEPENDENCY_GROUPS: &str = "KUDUHOOK_DEPENDENCY_GROUPS";
    pub const KUDUHOOK_INSTALLER: &str = "KUDUHOOK_INSTALLER";
    pub const KUDUHOOK_UV: &str = "KUDUHOOK_UV";
    pub const KUDUHOOK_ENV_MODE: &str = "KUDUHOOK_ENV_MODE";
    pub const KUDUHOOK_ENV_SWITCH: &str = "KUDUHOOK_ENV_SWITCH";
    pub const KUDUHOOK_ENV_ARCHIVE: &str = "KUDUHOOK_ENV_ARCHIVE";
    pub const KUDUHOOK_LOCK_WAIT: &str = "KUDUHOOK_LOCK_WAIT";
    pub const KUDUHOOK_KEEP_RELEASES: &str = "KUDUHOOK_KEEP_RELEASES";
    pub const KUDUHOOK_START_CHECK: &str = "KUDUHOOK_START_CHECK";
    pub const KUDUHOOK_START_CHECK_TIMEOUT: &str = "KUDUHOOK_START_CHECK_TIMEOUT";
    pub const KUDUHOOK_SYNC_IGNORE: &str = "KUDUHOOK_SYNC_IGNORE";
    pub const KUDUHOOK_SYNC_FULL_COMPARE: &str = "KUDUHOOK_SYNC_FULL_COMPARE";
    pub const KUDUHOOK_SYNC_CHECKSUM: &str = "KUDUHOOK_SYNC_CHECKSUM";
    pub const KUDUHOOK_SYNC_VERIFY: &str = "KUDUHOOK_SYNC_VERIFY";
    pub const KUDUHOOK_SYNC_OUTSIDE_LINKS: &str = "KUDUHOOK_SYNC_OUTSIDE_LINKS";
    pub const DISABLE_COLLECTSTATIC: &str = "DISABLE_COLLECTSTATIC";
    pub const PRE_BUILD_COMMAND: &str = "PRE_BUILD_COMMAND";
    pub const POST_BUILD_COMMAND: &str = "POST_BUILD_COMMAND";
}

/// Where a setting's value came from, as the log and errors name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag, e.g. `--python`.
    Flag(&'static str),
    /// `APPSETTING_<NAME>`: set in the portal.
    AppSetting(String),
    /// A plain environment variable (an app setting, or set by hand).
    Environment(String),
    /// A key of `.deployment`.
    DeploymentFile { key: String, line: usize },
    /// An option of a step in `deploy/steps.json`.
    StepsFile { path: String, step: &'static str },
    /// The site's stack on App Service Linux (`PYTHON|3.11`), which Kudu exports as
    /// `FRAMEWORK_VERSION`.
    SiteStack,
    /// A line of a repository file, e.g. `runtime.txt`.
    File { name: &'static str, line: usize },
    /// Nothing set it.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(flag) => write!(f, "{flag}"),
            Origin::AppSetting(name) => write!(f, "app setting {name}"),
            Origin::Environment(name) => write!(f, "setting {name} (environment)"),
            Origin::DeploymentFile { key, line } => write!(f, ".deployment line {line} ({key})"),
            Origin::StepsFile { path, step } => write!(f, "{path} (step {step})"),
            Origin::File { name, line } => write!(f, "{name} line {line}"),
            Origin::SiteStack => write!(f, "the site's stack (FRAMEWORK_VERSION)"),
            Origin::Default => write!(f, "the default"),
        }
    }
}

/// A resolved value and its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    pub value: T,
    pub origin: Origin,
}

impl<T> Setting<T> {
    pub fn new(value: T, origin: Origin) -> Setting<T> {
        Setting { value, origin }
    }
}

/// `1/true/yes/on` is `Some(true)`, `0/false/no/off` and empty are `Some(false)`, anything
/// else `None`. Case-insensitive, surrounding whitespace ignored.
pub fn truthy(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "" | "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// What to do with a link in the source that points outside it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutsideLinks {
    /// Skip it with a warning.
    #[default]
    Skip,
    /// Fail the sync before anything is changed.
    Error,
}
