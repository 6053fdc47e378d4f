//! Status colours (the seed plugin's): green succeeded, yellow running, red failed, grey
//! pending, magenta aborted, cyan anything else. Off with `--no-color`, `NO_COLOR`, or when
//! stdout is not a terminal.

/// ANSI reset.
const RESET: &str = "\x1b[0m";

/// Whether to colour, from the flag, the `NO_COLOR` variable and whether stdout is a terminal.
pub fn enabled(no_color_flag: bool, no_color_env: Option<&str>, stdout_is_terminal: bool) -> bool {
    // https://no-color.org: any non-empty value turns colour off.
    let env_off = no_color_env.is_some_and(|v| !v.is_empty());
    !no_color_flag && !env_off && stdout_is_terminal
}

/// The ANSI colour of a lower-case status.
pub fn code(status: &str) -> &'static str {
    match status {
        "succeeded" => "\x1b[32m",
        "running" => "\x1b[33m",
        "failed" => "\x1b[31m",
        "pending" => "\x1b[90m",
        "aborted" => "\x1b[35m",
        _ => "\x1b[36m",
    }
}

/// `text` in the colour of `status` when `on`, else `text` as it is.
pub fn paint(text: &str, status: &str, on: bool) -> String {
    if on {
        format!("{}{text}{RESET}", code(status))
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_is_off_by_flag_env_or_pipe() {
        assert!(enabled(false, None, true));
        assert!(enabled(false, Some(""), true));
        assert!(!enabled(true, None, true));
        assert!(!enabled(false, Some("1"), true));
        assert!(!enabled(false, None, false));
    }

    #[test]
    fn statuses_have_the_seed_colours() {
        assert_eq!(
            paint("[succeeded]", "succeeded", true),
            "\x1b[32m[succeeded]\x1b[0m"
        );
        assert_eq!(
            paint("[running]", "running", true),
            "\x1b[33m[running]\x1b[0m"
        );
        assert_eq!(paint("[failed]", "failed", true), "\x1b[31m[failed]\x1b[0m");
        assert_eq!(
            paint("[pending]", "pending", true),
            "\x1b[90m[pending]\x1b[0m"
        );
        assert_eq!(
            paint("[aborted]", "aborted", true),
            "\x1b[35m[aborted]\x1b[0m"
        );
        assert_eq!(
            paint("[skipped]", "skipped", true),
            "\x1b[36m[skipped]\x1b[0m"
        );
        assert_eq!(paint("[queued]", "queued", false), "[queued]");
    }
}
