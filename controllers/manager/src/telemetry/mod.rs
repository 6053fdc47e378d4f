//! What the manager tells about itself: logs, Events, Prometheus metrics (and the per-object
//! reconcile rates of the busiest objects), and the health and readiness endpoints.

pub mod events;
pub mod health;
pub mod hot_objects;
pub mod logging;
pub mod metrics;

use std::fmt::Write as _;

/// Starts a gauge the manager renders itself (series it can remove, which the metrics crate
/// cannot): a line break if needed, then its HELP and TYPE lines.
fn gauge_header(out: &mut String, name: &str, help: &str) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
}

/// Label value escaping of the text format: backslash, double quote and newline.
pub(crate) fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}
