//! The deployment log: plain lines for Kudu's log (colour only on a terminal), each step's lines
//! indented under its header, child process output marked with `|`.
//!
//! Everything goes to stdout, in order: Kudu logs stderr lines as warnings and reads the two
//! pipes separately, which would shuffle a child's errors away from the step they belong to.

use std::fmt;
use std::io::IsTerminal;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The `tracing` target of a child process's output lines.
pub const CHILD_OUTPUT: &str = "kuduhook::child";

/// Installs the log formatter. Call once, at start-up.
pub fn init() {
    let ansi = std::io::stdout().is_terminal();
    // Ignore the error: a second call (as in tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stdout)
        .with_max_level(Level::INFO)
        .event_format(LogFormat { ansi })
        .try_init();
}

struct LogFormat {
    ansi: bool,
}

impl LogFormat {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.ansi {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

impl<S, N> FormatEvent<S, N> for LogFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        if ctx.lookup_current().is_some() {
            write!(writer, "    ")?;
        }
        if meta.target() == CHILD_OUTPUT {
            write!(writer, "{}", self.paint("2", "| "))?;
        }
        match *meta.level() {
            Level::ERROR => write!(writer, "{} ", self.paint("1;31", "error:"))?,
            Level::WARN => write!(writer, "{} ", self.paint("1;33", "warning:"))?,
            _ => {}
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
