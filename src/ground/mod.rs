//! The ground floor: what every layer stands on, importing nothing of ours.
//!
//! - [`error`]: the failure vocabulary (what/why/fix, and the failures of the system itself);
//! - [`logging`]: the deployment log's format (plain lines off a TTY, for Kudu's log);
//! - [`paths`]: path arithmetic and atomic writes;
//! - [`calendar`]: UTC dates of Unix times; [`digest`]: digests as hex.

pub mod calendar;
pub mod digest;
pub mod error;
pub mod logging;
pub mod paths;
