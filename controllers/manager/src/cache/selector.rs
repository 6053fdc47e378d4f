//! `--watch-label-selector` (docs/scaling.md): the label selector a sharded manager adds to the
//! watches of its run objects and to the shared Job watch. Parsed and checked at start-up, with
//! the API server's grammar (`key`, `!key`, `key=value`, `key==value`, `key!=value`,
//! `key in (a,b)`, `key notin (a,b)`, joined by commas), so that a typo is a clear start-up error
//! rather than a watch that fails (or selects nothing) later. Pure: no client.

use std::{collections::BTreeMap, fmt, str::FromStr};

use jobsmith_engine::build::naming::is_label_value;

/// A selector that does not parse, with the requirement at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("empty requirement in {selector:?} (two commas in a row, or a trailing comma?)")]
    EmptyRequirement { selector: String },
    #[error(
        "{key:?} in {requirement:?} is not a label key (a name of at most 63 characters \
         [A-Za-z0-9-_.], starting and ending alphanumeric, optionally prefixed by a DNS subdomain and /)"
    )]
    InvalidKey { requirement: String, key: String },
    #[error(
        "{value:?} in {requirement:?} is not a label value (at most 63 characters [A-Za-z0-9-_.], \
         starting and ending alphanumeric, or empty)"
    )]
    InvalidValue { requirement: String, value: String },
    #[error(
        "{requirement:?}: expected `key`, `!key`, `key=value`, `key!=value`, `key in (v1,v2)` or `key notin (v1,v2)`"
    )]
    Syntax { requirement: String },
    #[error("{requirement:?}: `in` and `notin` need at least one value in parentheses")]
    EmptySet { requirement: String },
}

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Exists(String),
    NotExists(String),
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

impl Requirement {
    /// The label key the requirement is about.
    pub fn key(&self) -> &str {
        match self {
            Requirement::Exists(k)
            | Requirement::NotExists(k)
            | Requirement::Equals(k, _)
            | Requirement::NotEquals(k, _)
            | Requirement::In(k, _)
            | Requirement::NotIn(k, _) => k,
        }
    }

    /// Whether `labels` satisfy the requirement (the API server's semantics: `!=` and `notin`
    /// also select objects without the key).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requirement::Exists(k) => write!(f, "{k}"),
            Requirement::NotExists(k) => write!(f, "!{k}"),
            Requirement::Equals(k, v) => write!(f, "{k}={v}"),
            Requirement::NotEquals(k, v) => write!(f, "{k}!={v}"),
            Requirement::In(k, vs) => write!(f, "{k} in ({})", vs.join(",")),
            Requirement::NotIn(k, vs) => write!(f, "{k} notin ({})", vs.join(",")),
        }
    }
}

/// A checked, non-empty label selector; `Display` gives the normalized text sent to the API
/// server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchSelector {
    requirements: Vec<Requirement>,
}

impl WatchSelector {
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether an object with `labels` is selected (all requirements hold).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// The keys the selector names besides `key`, deduplicated in order.
    pub fn other_keys(&self, key: &str) -> Vec<&str> {
        let mut keys: Vec<&str> = Vec::new();
        for k in self.requirements.iter().map(Requirement::key) {
            if k != key && !keys.contains(&k) {
                keys.push(k);
            }
        }
        keys
    }
}

impl fmt::Display for WatchSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

/// `"a,b"` joined with an optional `extra` selector: both must hold (the API server ANDs the
/// comma-separated requirements).
pub fn and(base: &str, extra: Option<&WatchSelector>) -> String {
    match extra {
        Some(extra) => format!("{base},{extra}"),
        None => base.to_owned(),
    }
}

/// Parses a selector; an empty (or blank) text selects everything and is `None`.
pub fn parse(text: &str) -> Result<Option<WatchSelector>, SelectorError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let requirements = split_requirements(text)
        .into_iter()
        .map(|part| {
            let part = part.trim();
            if part.is_empty() {
                return Err(SelectorError::EmptyRequirement {
                    selector: text.to_owned(),
                });
            }
            parse_requirement(part)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(WatchSelector { requirements }))
}

/// An optional selector for clap: the empty string (an environment variable set to "") means
/// none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OptionalSelector(pub Option<WatchSelector>);

impl FromStr for OptionalSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s).map(OptionalSelector)
    }
}

impl fmt::Display for OptionalSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(selector) => write!(f, "{selector}"),
            None => Ok(()),
        }
    }
}

/// Splits at the commas outside parentheses.
fn split_requirements(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_requirement(part: &str) -> Result<Requirement, SelectorError> {
    let syntax = || SelectorError::Syntax {
        requirement: part.to_owned(),
    };
    if let Some(rest) = part.strip_prefix('!') {
        let key = rest.trim();
        check_key(part, key)?;
        return Ok(Requirement::NotExists(key.to_owned()));
    }
    let key_end = part
        .find(|c: char| c.is_whitespace() || "=!<>(),".contains(c))
        .unwrap_or(part.len());
    let (key, rest) = part.split_at(key_end);
    check_key(part, key)?;
    let key = key.to_owned();
    let rest = rest.trim_start();
    if rest.is_empty() {
        return Ok(Requirement::Exists(key));
    }
    let value = |v: &str| -> Result<String, SelectorError> {
        let v = v.trim();
        if is_label_value(v) {
            Ok(v.to_owned())
        } else {
            Err(SelectorError::InvalidValue {
                requirement: part.to_owned(),
                value: v.to_owned(),
            })
        }
    };
    if let Some(v) = rest.strip_prefix("==") {
        return Ok(Requirement::Equals(key, value(v)?));
    }
    if let Some(v) = rest.strip_prefix("!=") {
        return Ok(Requirement::NotEquals(key, value(v)?));
    }
    if let Some(v) = rest.strip_prefix('=') {
        return Ok(Requirement::Equals(key, value(v)?));
    }
    let (negated, set) = if let Some(set) = rest.strip_prefix("notin") {
        (true, set)
    } else if let Some(set) = rest.strip_prefix("in") {
        (false, set)
    } else {
        return Err(syntax());
    };
    let set = set.trim();
    let inner = set
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(syntax)?;
    if inner.trim().is_empty() {
        return Err(SelectorError::EmptySet {
            requirement: part.to_owned(),
        });
    }
    let mut values = inner.split(',').map(value).collect::<Result<Vec<_>, _>>()?;
    values.sort();
    values.dedup();
    Ok(if negated {
        Requirement::NotIn(key, values)
    } else {
        Requirement::In(key, values)
    })
}

fn check_key(requirement: &str, key: &str) -> Result<(), SelectorError> {
    if is_label_key(key) {
        Ok(())
    } else {
        Err(SelectorError::InvalidKey {
            requirement: requirement.to_owned(),
            key: key.to_owned(),
        })
    }
}

/// A qualified name: `[prefix/]name`, the prefix a DNS subdomain (at most 253 characters), the
/// name at most 63 characters of `[A-Za-z0-9-_.]` starting and ending alphanumeric.
pub fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let name_ok = !name.is_empty() && is_label_value(name);
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            })
    });
    name_ok && prefix_ok
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test may panic
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn selector(text: &str) -> WatchSelector {
        parse(text).unwrap().unwrap()
    }

    #[test]
    fn the_sharding_selectors_parse_and_normalize() {
        let shard1 = selector("sharding.jobsmith.dev/key in (shard1)");
        assert_eq!(
            shard1.requirements(),
            [Requirement::In(
                "sharding.jobsmith.dev/key".into(),
                vec!["shard1".into()]
            )]
        );
        assert_eq!(shard1.to_string(), "sharding.jobsmith.dev/key in (shard1)");
        let rest = selector(" !sharding.jobsmith.dev/key ");
        assert_eq!(rest.to_string(), "!sharding.jobsmith.dev/key");
        assert_eq!(
            selector("a in ( y , x,x ),b notin(z),c,d=1,e==2,f!=3").to_string(),
            "a in (x,y),b notin (z),c,d=1,e=2,f!=3"
        );
        assert_eq!(selector("k=").to_string(), "k=", "an empty value is valid");
    }

    #[test]
    fn empty_text_selects_everything() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("  ").unwrap(), None);
        assert_eq!("".parse::<OptionalSelector>().unwrap().0, None);
    }

    #[test]
    fn bad_selectors_say_what_is_wrong() {
        for (text, want) in [
            ("a,,b", "empty requirement"),
            ("a,", "empty requirement"),
            ("Sharding.Jobsmith.dev/key", "not a label key"),
            ("-a", "not a label key"),
            ("a/b/c", "not a label key"),
            ("k in shard1", "expected `key`"),
            ("k in (shard1", "expected `key`"),
            ("k ~ x", "expected `key`"),
            ("k > 3", "expected `key`"),
            ("k in ()", "at least one value"),
            ("k=bad value", "not a label value"),
            ("k in (ok,-bad)", "not a label value"),
            ("!", "not a label key"),
            (&format!("k={}", "x".repeat(64)), "not a label value"),
        ] {
            let error = parse(text).expect_err(text).to_string();
            assert!(error.contains(want), "{text:?}: {error}");
        }
    }

    #[test]
    fn shards_split_run_objects_without_overlap_or_gap() {
        let shards = [
            selector("sharding.jobsmith.dev/key in (shard1)"),
            selector("sharding.jobsmith.dev/key in (shard2)"),
            selector("!sharding.jobsmith.dev/key"),
        ];
        for (object, owner) in [
            (labels(&[("sharding.jobsmith.dev/key", "shard1")]), Some(0)),
            (labels(&[("sharding.jobsmith.dev/key", "shard2")]), Some(1)),
            (labels(&[("team", "a")]), Some(2)),
            (labels(&[]), Some(2)),
            // A shard no manager serves is reconciled by none: docs/scaling.md says so.
            (labels(&[("sharding.jobsmith.dev/key", "shard9")]), None),
        ] {
            let selected: Vec<usize> = (0..shards.len())
                .filter(|i| shards[*i].matches(&object))
                .collect();
            assert_eq!(
                selected,
                owner.into_iter().collect::<Vec<_>>(),
                "{object:?}"
            );
        }
    }

    #[test]
    fn requirements_follow_the_api_servers_semantics() {
        let none = labels(&[]);
        let x = labels(&[("k", "x")]);
        assert!(selector("k!=x").matches(&none));
        assert!(!selector("k!=x").matches(&x));
        assert!(selector("k notin (x)").matches(&none));
        assert!(!selector("k notin (x)").matches(&x));
        assert!(selector("k").matches(&x) && !selector("k").matches(&none));
        assert!(selector("k=x,!j").matches(&x));
        assert!(!selector("k=x,j").matches(&x));
    }

    #[test]
    fn the_job_watch_selector_ands_the_shard() {
        let shard = selector("sharding.jobsmith.dev/key in (shard1)");
        assert_eq!(
            and("app.kubernetes.io/managed-by=jobsmith", Some(&shard)),
            "app.kubernetes.io/managed-by=jobsmith,sharding.jobsmith.dev/key in (shard1)"
        );
        assert_eq!(
            and("app.kubernetes.io/managed-by=jobsmith", None),
            "app.kubernetes.io/managed-by=jobsmith"
        );
        assert_eq!(
            selector("sharding.jobsmith.dev/key in (a),team=x")
                .other_keys("sharding.jobsmith.dev/key"),
            ["team"]
        );
    }

    #[test]
    fn label_keys() {
        assert!(is_label_key("sharding.jobsmith.dev/key"));
        assert!(is_label_key("app.kubernetes.io/managed-by"));
        assert!(is_label_key("Key_1.x"));
        assert!(!is_label_key(""));
        assert!(!is_label_key("/key"));
        assert!(!is_label_key("UPPER.dev/key"));
        assert!(!is_label_key("a/"));
        assert!(!is_label_key(&"k".repeat(64)));
    }
}
