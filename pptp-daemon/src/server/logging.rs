//! The log: text or JSON lines on stderr, filtered by a level that can be
//! changed while the daemon runs ([`set_level`], for reload).
//!
//! Session lines carry the session's identity through spans rather than
//! through every log call: the session task runs in a `session` span with
//! `sid` (the Acct-Session-Id, what `ctl` and RADIUS name the session by)
//! and `user` (recorded once authenticated), a control connection's task
//! in a `conn` span with its `peer`. The text format prints them before
//! the message (`session{sid=... user=alice}: authenticated`); the JSON
//! format puts them in each line's `span` and `spans` members.

use std::sync::OnceLock;

use tracing::Subscriber;
use tracing_subscriber::{
    EnvFilter, Layer, Registry, fmt::MakeWriter, layer::SubscriberExt as _, reload,
    util::SubscriberInitExt as _,
};

use crate::{cli::LogLevel, config::LogFormat};

/// Changes the level of a running log.
pub type LevelHandle = reload::Handle<EnvFilter, Registry>;

/// The installed log's level handle (set once by [`init`]).
static LEVEL: OnceLock<LevelHandle> = OnceLock::new();

/// Why the level could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("the log is not set up (logging::init was not called)")]
    NotInitialized,
    #[error("changing the log level: {0}")]
    Reload(#[from] reload::Error),
}

/// `RUST_LOG` when set, else `level`.
fn filter(level: LogLevel) -> EnvFilter {
    EnvFilter::builder()
        .with_default_directive(level.as_filter().into())
        .from_env_lossy()
}

/// The subscriber writing `format` lines to `writer`, and the handle that
/// changes its level.
pub fn subscriber<W>(
    level: LogLevel,
    format: LogFormat,
    writer: W,
) -> (impl Subscriber + Send + Sync + 'static, LevelHandle)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let (filter, handle) = reload::Layer::new(filter(level));
    let lines = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer().with_writer(writer).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(writer)
            .boxed(),
    };
    (
        tracing_subscriber::registry().with(filter).with(lines),
        handle,
    )
}

/// Sets up the log: `RUST_LOG` when set, else `level`, in `format`. Log
/// records of the `log` crate (aya, aya-log) are forwarded too. Logs go
/// to stderr: stdout belongs to command output (the client's JSON lines,
/// `sessions`). A second call changes nothing.
pub fn init(level: LogLevel, format: LogFormat) {
    let (subscriber, handle) = subscriber(level, format, std::io::stderr);
    if subscriber.try_init().is_ok() {
        let _ = LEVEL.set(handle);
    }
}

/// Changes the level of the running log (reload): what `RUST_LOG` does
/// not set follows `level` from now on.
pub fn set_level(level: LogLevel) -> Result<(), LogError> {
    let handle = LEVEL.get().ok_or(LogError::NotInitialized)?;
    set_level_of(handle, level)
}

/// [`set_level`] on the log behind `handle`.
pub fn set_level_of(handle: &LevelHandle, level: LogLevel) -> Result<(), LogError> {
    let filter = filter(level);
    // Records of the `log` crate are filtered by its own maximum first:
    // the most verbose level the new filter lets through.
    let most = filter
        .max_level_hint()
        .map_or(log::LevelFilter::Trace, |l| {
            use tracing::level_filters::LevelFilter as L;
            match l {
                L::OFF => log::LevelFilter::Off,
                L::ERROR => log::LevelFilter::Error,
                L::WARN => log::LevelFilter::Warn,
                L::INFO => log::LevelFilter::Info,
                L::DEBUG => log::LevelFilter::Debug,
                _ => log::LevelFilter::Trace,
            }
        });
    handle.reload(filter)?;
    log::set_max_level(most);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::{
        io::Write,
        sync::{Arc, Mutex},
    };

    use super::*;

    /// Log lines in memory.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Buffer {
        fn lines(&self) -> Vec<String> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect()
        }
    }

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'w self) -> Buffer {
            self.clone()
        }
    }

    #[test]
    fn set_level_changes_what_is_logged() {
        if std::env::var_os("RUST_LOG").is_some() {
            panic!("unset RUST_LOG for this test: it overrides the level under test");
        }
        let out = Buffer::default();
        let (subscriber, handle) = subscriber(LogLevel::Info, LogFormat::Text, out.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!("hidden at info");
            tracing::info!("shown at info");
            set_level_of(&handle, LogLevel::Debug).unwrap();
            tracing::debug!("shown at debug");
            set_level_of(&handle, LogLevel::Warn).unwrap();
            tracing::info!("hidden at warn");
            tracing::warn!("shown at warn");
        });
        let text = out.lines().join("\n");
        assert!(!text.contains("hidden"), "{text}");
        for line in ["shown at info", "shown at debug", "shown at warn"] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }

    #[test]
    fn set_level_without_a_log_says_so() {
        // The unit tests never call init.
        assert!(matches!(
            set_level(LogLevel::Debug),
            Err(LogError::NotInitialized)
        ));
    }

    #[test]
    fn json_lines_carry_the_session_span() {
        let out = Buffer::default();
        let (subscriber, _) = subscriber(LogLevel::Info, LogFormat::Json, out.clone());
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "session",
                sid = "5f5e1000-0001-00000001",
                user = tracing::field::Empty
            );
            let _entered = span.enter();
            span.record("user", "alice");
            tracing::info!(call_id = 1, "authenticated");
        });
        let lines = out.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["fields"]["message"], "authenticated");
        assert_eq!(v["span"]["sid"], "5f5e1000-0001-00000001");
        assert_eq!(v["span"]["user"], "alice");
        assert_eq!(v["level"], "INFO");
    }
}
