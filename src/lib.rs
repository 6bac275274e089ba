//! kuduhook: the deployment command Kudu runs on `git push` (or a zip deploy) to Azure App
//! Service, for Python web apps. It replaces the generated `deploy.cmd` with staged steps: sync
//! the repository into the site, detect the Python runtime, validate (or rebuild) the env,
//! install the dependencies, check the app starts, and the user's own steps.
//!
//! The crate is a house of layers, each importing only from those below it (`docs/architecture.md`
//! draws it; CI checks that no import cycle creeps back):
//!
//! - [`ground`]: the failure vocabulary, logging, paths; [`settings`]: plain data (where a value
//!   came from, the Kudu contract, the platform, `deploy/steps.json`); [`process`]: running
//!   programs with the deployment's environment.
//! - [`python`]: versions, interpreters, requirements, markers, what an exact env holds, where
//!   the dependencies come from.
//! - [`env`]: building, recording, archiving and switching the env; the deploy lock.
//! - [`sync`]: repository to site, with its undo log; [`platform`]: how the platform starts the
//!   site; [`release`]: going live, the releases kept, rolling back.
//! - [`config`]: every setting of a deployment resolved once into each module's options;
//!   [`steps`]: one module per step; [`pipeline`]: the deployment from plan to record.
//! - [`commands`] and [`cli`]: deploy, sync, status, rollback, init, rehearse.

pub mod cli;
pub mod commands;
pub mod config;
pub mod env;
pub mod ground;
pub mod pipeline;
pub mod platform;
pub mod process;
pub mod python;
pub mod release;
pub mod settings;
pub mod steps;
pub mod sync;

pub use commands::run;
