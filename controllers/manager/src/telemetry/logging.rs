//! Logging: `tracing` with an env filter; JSON lines in the cluster, pretty with `--dev-mode`.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::cli::LogLevel;

/// The filter for a `LOG_LEVEL`; `RUST_LOG`, when set and valid, wins with its full syntax.
pub fn filter(level: LogLevel, rust_log: Option<&str>) -> EnvFilter {
    if let Some(directives) = rust_log.filter(|s| !s.trim().is_empty())
        && let Ok(filter) = EnvFilter::try_new(directives)
    {
        return filter;
    }
    // The HTTP stack is very chatty at debug; keep it at info unless RUST_LOG asks for it.
    EnvFilter::new(format!(
        "{},hyper=info,hyper_util=info,h2=info,rustls=info,tower=info",
        level.as_str()
    ))
}

/// Installs the global subscriber. Start-up only; a second call is an error.
pub fn init(dev_mode: bool, level: LogLevel) -> Result<(), tracing_subscriber::util::TryInitError> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = filter(level, rust_log.as_deref());
    let registry = tracing_subscriber::registry().with(filter);
    if dev_mode {
        registry.with(fmt::layer().pretty()).try_init()
    } else {
        registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true),
            )
            .try_init()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test may panic
mod tests {
    use super::*;

    fn directives(filter: &EnvFilter) -> Vec<String> {
        filter.to_string().split(',').map(str::to_owned).collect()
    }

    #[test]
    fn log_level_sets_the_default_directive() {
        let warn = directives(&filter(LogLevel::Warn, None));
        assert!(warn.contains(&"warn".to_string()), "{warn:?}");
        assert!(warn.contains(&"hyper=info".to_string()), "{warn:?}");
        let debug = directives(&filter(LogLevel::Debug, Some("  ")));
        assert!(debug.contains(&"debug".to_string()), "{debug:?}");
    }

    #[test]
    fn rust_log_overrides_log_level_when_valid() {
        assert_eq!(
            directives(&filter(LogLevel::Info, Some("jobsmith=trace"))),
            ["jobsmith=trace"]
        );
        // An invalid RUST_LOG falls back to LOG_LEVEL instead of failing start-up.
        let fallback = directives(&filter(LogLevel::Error, Some("jobsmith=notalevel")));
        assert!(fallback.contains(&"error".to_string()), "{fallback:?}");
    }
}
