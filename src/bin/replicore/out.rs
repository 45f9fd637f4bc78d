//! Output helpers: progress bars that stay silent off a terminal, RFC 3339 times, sizes.

use std::io::IsTerminal;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressStyle};

use crate::Failure;

/// An error of a verb that writes outputs: an output that exists already says that `--force`
/// replaces it (exit 5); anything else is the library's error.
pub fn forceable(e: replicore::Error) -> Failure {
    match e {
        replicore::Error::AlreadyExists { what } => {
            Failure::Exists(format!("{what} already exists; --force replaces it"))
        }
        e => Failure::Lib(e),
    }
}

/// A progress bar on stderr, hidden when stderr is not a terminal.
pub struct Bar(ProgressBar);

impl Bar {
    pub fn new(what: &str) -> Bar {
        let bar = if std::io::stderr().is_terminal() {
            ProgressBar::new(0)
        } else {
            ProgressBar::hidden()
        };
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_string());
        Bar(bar)
    }

    /// The callback the library takes: updates the bar, never cancels.
    pub fn callback(&self) -> impl FnMut(u64, u64) -> bool + '_ {
        |done, total| {
            self.0.set_length(total);
            self.0.set_position(done);
            true
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// Parses an RFC 3339 time (`2026-11-25T10:00:00Z`, offsets allowed).
pub fn parse_time(s: &str, what: &str) -> Result<SystemTime, Failure> {
    humantime::parse_rfc3339_weak(s.trim())
        .or_else(|_| humantime::parse_rfc3339(s.trim()))
        .or_else(|_| parse_offset(s.trim()))
        .map_err(|_| {
            Failure::Usage(format!(
                "{what}: `{s}` is not an RFC 3339 time (like 2026-11-25T10:00:00Z)"
            ))
        })
}

/// RFC 3339 with a numeric offset (`+02:00`), which humantime does not read.
fn parse_offset(s: &str) -> Result<SystemTime, ()> {
    let (at, sign) = match (s.rfind('+'), s.rfind('-')) {
        (Some(i), _) if i > 10 => (i, 1i64),
        (_, Some(i)) if i > 10 => (i, -1i64),
        _ => return Err(()),
    };
    let (base, off) = s.split_at(at);
    let (h, m) = off[1..].split_once(':').ok_or(())?;
    let secs =
        (h.parse::<i64>().map_err(|_| ())? * 3600 + m.parse::<i64>().map_err(|_| ())? * 60) * sign;
    let t = humantime::parse_rfc3339_weak(base).map_err(|_| ())?;
    if secs >= 0 {
        t.checked_sub(Duration::from_secs(secs as u64)).ok_or(())
    } else {
        t.checked_add(Duration::from_secs((-secs) as u64)).ok_or(())
    }
}

/// A time as RFC 3339 in UTC, to the second.
pub fn format_time(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// Bytes in a short human form.
pub fn bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}
