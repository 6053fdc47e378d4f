//! Deterministic names for child objects (SPEC §1 "Child Jobs").
//!
//! A name is built from parts joined with `-` and lower-cased. If that is already a valid
//! DNS-1123 label of at most 63 characters it is used as is. Otherwise invalid characters are
//! mapped to `-` (one `-` per character, so the mapping never depends on context), leading and
//! trailing `-` are trimmed, the result is cut so that `-` plus 8 hex characters of the SHA-256
//! of the full (lower-cased, unmapped) name fit into 63 characters, and that suffix is appended.
//! The hash keeps two different inputs apart even when they map or truncate to the same text.
//!
//! Label values follow the same scheme with the label-value charset (case is kept, `_` and `.`
//! are allowed, the empty value is valid).

use sha2::{Digest, Sha256};

/// Longest DNS-1123 label and longest label value.
pub const MAX_LABEL_LEN: usize = 63;

/// Number of hex characters of the SHA-256 appended to shortened names.
pub const HASH_LEN: usize = 8;

/// The name of a child object built from `parts` (for example `[managedjob, group, job]`).
///
/// Always a valid DNS-1123 label (RFC 1123: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 chars).
pub fn child_name(parts: &[&str]) -> String {
    let full = parts.join("-").to_ascii_lowercase();
    if is_dns1123_label(&full) {
        return full;
    }
    let mapped: String = full
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    shorten(&mapped, &full, |c| c.is_ascii_alphanumeric())
}

/// The Job name of a step's attempt `attempt`: attempt 1 (and 0) keeps the step's name
/// `base` (runs from before retries existed are unchanged); attempt n >= 2 is
/// `<base>-a<n>-<hash>`, the hash being of `base` and `n`, with `base` cut so that the whole
/// stays a DNS-1123 label of at most 63 characters. The hash is always there, so an attempt's
/// name can never equal another step's plain name (a job `j-a2` beside a job `j`).
pub fn attempt_name(base: &str, attempt: u32) -> String {
    if attempt <= 1 {
        return base.to_owned();
    }
    let suffix = format!("-a{attempt}");
    let hash = short_hash(&format!("{base}/attempt/{attempt}"));
    let budget = MAX_LABEL_LEN.saturating_sub(HASH_LEN + 1 + suffix.len());
    let cut = base
        .get(..budget.min(base.len()))
        .unwrap_or_default()
        .trim_matches('-');
    format!("{cut}{suffix}-{hash}")
        .trim_start_matches('-')
        .to_owned()
}

/// A container name: the same rules as a child name with a single part.
pub fn container_name(name: &str) -> String {
    child_name(&[name])
}

/// A label value: at most 63 characters of `[A-Za-z0-9_.-]`, starting and ending alphanumeric,
/// or empty. Case is preserved (label values are case-sensitive).
pub fn label_value(value: &str) -> String {
    if is_label_value(value) {
        return value.to_owned();
    }
    let mapped: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    shorten(&mapped, value, |c| c.is_ascii_alphanumeric())
}

/// `true` when `s` is a DNS-1123 label of at most 63 characters.
pub fn is_dns1123_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            bytes.len() <= MAX_LABEL_LEN
                && is_lower_alnum(*first)
                && is_lower_alnum(*last)
                && bytes.iter().all(|b| is_lower_alnum(*b) || *b == b'-')
        }
        _ => false,
    }
}

/// `true` when `s` is a valid Kubernetes label value (the empty string is valid).
pub fn is_label_value(s: &str) -> bool {
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (None, _) | (_, None) => true,
        (Some(first), Some(last)) => {
            bytes.len() <= MAX_LABEL_LEN
                && first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
    }
}

/// The first [`HASH_LEN`] lower-case hex characters of the SHA-256 of `s`.
pub fn short_hash(s: &str) -> String {
    let digest = Sha256::digest(s.as_bytes());
    let mut out = String::with_capacity(HASH_LEN);
    for byte in digest.iter().take(HASH_LEN / 2) {
        out.push(hex_digit(byte >> 4));
        out.push(hex_digit(byte & 0x0f));
    }
    out
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(nibble & 0x0f)])
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `mapped` holds only ASCII characters allowed in the middle of the result; cut it so that
/// `-<hash of full>` fits, trim characters that may not start or end the result, append the hash.
fn shorten(mapped: &str, full: &str, may_start_or_end: impl Fn(char) -> bool) -> String {
    let hash = short_hash(full);
    let budget = MAX_LABEL_LEN - HASH_LEN - 1;
    // `mapped` is ASCII, so byte and char positions agree.
    let cut = mapped.get(..budget.min(mapped.len())).unwrap_or(mapped);
    let body = cut.trim_matches(|c: char| !may_start_or_end(c));
    if body.is_empty() {
        hash
    } else {
        format!("{body}-{hash}")
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn attempt_names_are_deterministic_valid_and_distinct() {
        assert_eq!(attempt_name("wf-g-j", 1), "wf-g-j");
        assert_eq!(attempt_name("wf-g-j", 0), "wf-g-j");
        let second = attempt_name("wf-g-j", 2);
        assert!(second.starts_with("wf-g-j-a2-"), "{second}");
        assert_eq!(second, attempt_name("wf-g-j", 2));
        assert_ne!(second, attempt_name("wf-g-j", 3));
        assert_ne!(second, "wf-g-j-a2");
        let long = "x".repeat(63);
        for n in [2, 10, 4_000_000_000] {
            let name = attempt_name(&long, n);
            assert!(is_dns1123_label(&name), "{name}");
            assert!(name.contains(&format!("-a{n}-")), "{name}");
        }
    }

    proptest! {
        #[test]
        fn attempt_names_are_always_labels(base in "[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", n in 2u32..1000) {
            prop_assert!(is_dns1123_label(&attempt_name(&base, n)));
        }
    }

    #[test]
    fn short_valid_names_are_unchanged() {
        assert_eq!(
            child_name(&["managedjob-sample", "first-group", "first-job"]),
            "managedjob-sample-first-group-first-job"
        );
        assert_eq!(child_name(&["a"]), "a");
        assert_eq!(label_value("first-group_x.y"), "first-group_x.y");
        assert_eq!(label_value(""), "");
        assert_eq!(label_value("MixedCase"), "MixedCase");
    }

    #[test]
    fn upper_case_is_lowered_without_hash() {
        assert_eq!(child_name(&["Flow", "Build"]), "flow-build");
    }

    #[test]
    fn invalid_characters_are_mapped_and_hashed() {
        let name = child_name(&["wf", "my_group", "job.v1"]);
        assert!(name.starts_with("wf-my-group-job-v1-"), "{name}");
        assert_eq!(name.len(), "wf-my-group-job-v1-".len() + HASH_LEN);
        assert!(is_dns1123_label(&name));
        // `a_b` and `a.b` map to the same text but stay distinct.
        assert_ne!(child_name(&["a_b"]), child_name(&["a.b"]));
        assert_ne!(child_name(&["a_b"]), child_name(&["a-b"]));
    }

    #[test]
    fn long_names_are_truncated_with_hash() {
        let long = "x".repeat(100);
        let name = child_name(&["wf", &long]);
        assert_eq!(name.len(), MAX_LABEL_LEN);
        assert!(name.ends_with(&format!("-{}", short_hash(&format!("wf-{long}")))));
        assert!(is_dns1123_label(&name));
    }

    #[test]
    fn nothing_usable_gives_the_hash_alone() {
        let name = child_name(&["--", "__"]);
        assert_eq!(name, short_hash("---__"));
        assert!(is_dns1123_label(&name));
        assert!(is_dns1123_label(&child_name(&[])));
        assert!(is_label_value(&label_value("///")));
    }

    #[test]
    fn truncation_does_not_end_on_a_dash() {
        // Position 54 (the cut) falls right after a dash.
        let part = format!("{}-{}", "a".repeat(53), "b".repeat(20));
        let name = child_name(&[&part]);
        assert!(is_dns1123_label(&name), "{name}");
        assert!(name.starts_with(&"a".repeat(53)));
    }

    #[test]
    fn label_values_keep_case_and_shorten() {
        let long = format!("Group_{}", "Z".repeat(80));
        let v = label_value(&long);
        assert_eq!(v.len(), MAX_LABEL_LEN);
        assert!(v.starts_with("Group_ZZ"));
        assert!(is_label_value(&v));
        assert_eq!(
            label_value("g/job"),
            format!("g-job-{}", short_hash("g/job"))
        );
    }

    #[test]
    fn container_names_follow_the_name_rules() {
        assert_eq!(container_name("main"), "main");
        assert!(is_dns1123_label(&container_name("Main_Container")));
    }

    #[test]
    fn validators() {
        assert!(is_dns1123_label("a-b-1"));
        assert!(!is_dns1123_label("-a"));
        assert!(!is_dns1123_label("a-"));
        assert!(!is_dns1123_label("A"));
        assert!(!is_dns1123_label(""));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(is_label_value("a.b_c-D"));
        assert!(!is_label_value("_a"));
        assert!(!is_label_value("a/b"));
    }

    proptest! {
        #[test]
        fn child_names_are_always_valid_and_deterministic(parts in proptest::collection::vec(".{0,40}", 0..5)) {
            let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
            let a = child_name(&refs);
            prop_assert!(is_dns1123_label(&a), "{a:?}");
            prop_assert_eq!(a, child_name(&refs));
        }

        #[test]
        fn label_values_are_always_valid_and_deterministic(v in ".{0,100}") {
            let a = label_value(&v);
            prop_assert!(is_label_value(&a), "{a:?}");
            prop_assert_eq!(a, label_value(&v));
        }

        #[test]
        fn valid_short_names_are_unchanged(v in "[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?") {
            prop_assert_eq!(child_name(&[&v]), v.clone());
            prop_assert_eq!(label_value(&v), v);
        }

        #[test]
        fn names_that_collide_after_truncation_differ(prefix in "[a-z]{60}", a in "[a-z0-9]{1,20}", b in "[a-z0-9]{1,20}") {
            prop_assume!(a != b);
            let x = child_name(&[&prefix, &a]);
            let y = child_name(&[&prefix, &b]);
            prop_assert_ne!(x, y);
            let lx = label_value(&format!("{prefix}{a}"));
            let ly = label_value(&format!("{prefix}{b}"));
            prop_assert_ne!(lx, ly);
        }

        #[test]
        fn names_that_collide_after_mapping_differ(a in "[a-z]{1,10}", sep1 in "[_./ ]", sep2 in "[_./ ]", b in "[a-z]{1,10}") {
            prop_assume!(sep1 != sep2);
            prop_assert_ne!(child_name(&[&format!("{a}{sep1}{b}")]), child_name(&[&format!("{a}{sep2}{b}")]));
        }
    }
}
