//! The ground floor: what every layer stands on, importing nothing of ours.
//!
//! - [`error`]: the failure vocabulary (what/why/fix, and the failures of the system itself);
//! - [`disk`]: what a filesystem error means (full, I/O, refused) and the numbers to say then;
//! - [`logging`]: the deployment log's format (plain lines off a TTY, for Kudu's log);
//! - [`paths`]: path arithmetic and atomic writes;
//! - [`calendar`]: UTC dates of Unix times; [`digest`]: digests as hex.

pub mod calendar;
pub mod digest;
pub mod disk;
pub mod error;
pub mod logging;
pub mod paths;
