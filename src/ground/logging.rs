//! The deployment log: plain lines for Kudu's log (colour only on a terminal), each step's lines
//! indented under its header, child process output marked with `|`.
//!
//! Everything goes to stdout, in order: Kudu logs stderr lines as warnings and reads the two
//! pipes separately, which would shuffle a child's errors away from the step they belong to.

use std::fmt;
use std::io::IsTerminal;
use std::time::Duration;

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

/// "1 file", "2 files", "2 entries".
pub fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else if let Some(stem) = noun.strip_suffix('y') {
        format!("{count} {stem}ies")
    } else {
        format!("{count} {noun}s")
    }
}

/// The first `limit` of `items` as `show` writes them, comma-separated, then "and N more".
pub fn list<T>(items: &[T], limit: usize, show: impl Fn(&T) -> String) -> String {
    let mut shown: Vec<String> = items.iter().take(limit).map(show).collect();
    if items.len() > limit {
        shown.push(format!("and {} more", items.len() - limit));
    }
    shown.join(", ")
}

/// "512 B", "1.5 KiB".
pub fn bytes(count: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{count} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// "1.50s", "1m 03s".
pub fn seconds(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.2}s")
    } else {
        format!(
            "{}m {:02}s",
            duration.as_secs() / 60,
            duration.as_secs() % 60
        )
    }
}

/// A commit id as the log shows it: its first 12 characters.
pub fn short_commit(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// How long ago a Unix time was, roughly: "just now", "5m ago", "3h ago", "2d ago".
pub fn ago(then_unix: u64, now_unix: u64) -> String {
    let secs = now_unix.saturating_sub(then_unix);
    match secs {
        0..60 => "just now".to_string(),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86400),
    }
}

/// A Unix time as a UTC date and time: "2026-11-23 14:05:09 UTC".
pub fn utc(unix: u64) -> String {
    let (year, month, day, hour, minute, second) = super::calendar::civil(unix as i64);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_counts_and_durations_read_naturally() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(plural(1, "file"), "1 file");
        assert_eq!(plural(2, "entry"), "2 entries");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.50s");
        assert_eq!(seconds(Duration::from_secs(63)), "1m 03s");
        assert_eq!(ago(100, 130), "just now");
        assert_eq!(ago(0, 7200), "2h ago");
        assert_eq!(ago(0, 3 * 86400 + 5), "3d ago");
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_795_473_859), "2026-11-23 22:44:19 UTC");
    }
}
