//! Completion for kubectl's plugin completion: kubectl (1.26+) runs
//! `kubectl_complete-jobsmith <words after "kubectl jobsmith"> <word being completed>` and reads
//! Cobra's `__complete` answer: one candidate per line, then `:<directive>` (4: no file names).
//! The binary answers when called by that name (a symlink) or as `kubectl-jobsmith __complete`.
//!
//! [`plan`] is the pure part: from the words, what to offer (fixed words, or the run names of a
//! namespace, which the caller lists).

use clap::CommandFactory;

use crate::args::Cli;

/// Cobra's ShellCompDirectiveNoFileComp.
pub const NO_FILE_COMPLETION: u8 = 4;

/// What to offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Offer {
    /// These words (already filtered by the prefix).
    Words(Vec<String>),
    /// The names of the runs in a namespace (`None`: the context's), filtered by `prefix`.
    RunNames {
        /// `-n` among the words, if any.
        namespace: Option<String>,
        /// The word being completed.
        prefix: String,
    },
}

/// Options that take a value (their next word is not a positional argument).
const VALUE_OPTIONS: [&str; 12] = [
    "-n",
    "--namespace",
    "--context",
    "--kubeconfig",
    "--interval",
    "-o",
    "--output",
    "--format",
    "--for",
    "--timeout",
    "--job",
    "--step",
];

/// Decides what to offer for `words` (the last one is being completed).
pub fn plan(words: &[String]) -> Offer {
    let (current, before) = match words.split_last() {
        Some((current, before)) => (current.clone(), before),
        None => (String::new(), &[][..]),
    };
    let command = Cli::command();
    let Parsed {
        namespace,
        subcommand,
        positionals,
    } = parse(&command, before);
    let filter = |words: Vec<String>| -> Offer {
        Offer::Words(
            words
                .into_iter()
                .filter(|w| w.starts_with(&current))
                .collect(),
        )
    };
    match before.last().map(String::as_str) {
        Some("--format") => return filter(vec!["dot".into(), "mermaid".into(), "svg".into()]),
        Some("--for") => return filter(vec!["succeeded".into(), "completed".into()]),
        Some("-o" | "--output") => {
            return filter(vec!["json".into(), "yaml".into(), "wide".into()]);
        }
        Some(p) if VALUE_OPTIONS.contains(&p) => return Offer::Words(Vec::new()),
        _ => {}
    }
    let Some(sub) = subcommand else {
        if current.starts_with('-') {
            return filter(long_flags(&command));
        }
        return filter(
            command
                .get_subcommands()
                .map(|s| s.get_name().to_owned())
                .filter(|n| n != "help")
                .collect(),
        );
    };
    if current.starts_with('-') {
        let mut flags = long_flags(&sub);
        flags.extend(long_flags(&command));
        flags.sort();
        flags.dedup();
        return filter(flags);
    }
    match sub.get_name() {
        "completion" if positionals == 0 => {
            filter(vec!["bash".into(), "zsh".into(), "fish".into()])
        }
        "list" if positionals == 0 => {
            filter(vec!["mj".into(), "jf".into(), "dj".into(), "jr".into()])
        }
        "version" | "completion" | "list" => Offer::Words(Vec::new()),
        _ if positionals == 0 => Offer::RunNames {
            namespace,
            prefix: current,
        },
        _ => Offer::Words(Vec::new()),
    }
}

/// What the words before the one being completed say.
struct Parsed {
    /// From `-n`/`--namespace`.
    namespace: Option<String>,
    /// The subcommand named (by name or alias).
    subcommand: Option<clap::Command>,
    /// How many positional arguments follow the subcommand.
    positionals: usize,
}

fn parse(command: &clap::Command, before: &[String]) -> Parsed {
    let mut parsed = Parsed {
        namespace: None,
        subcommand: None,
        positionals: 0,
    };
    let mut i = 0;
    while let Some(word) = before.get(i) {
        if VALUE_OPTIONS.contains(&word.as_str()) {
            if matches!(word.as_str(), "-n" | "--namespace") {
                parsed.namespace = before.get(i + 1).cloned();
            }
            i += 2;
            continue;
        }
        if let Some(ns) = word.strip_prefix("--namespace=") {
            parsed.namespace = Some(ns.to_owned());
        } else if word.starts_with('-') {
            // a flag
        } else if parsed.subcommand.is_none() {
            parsed.subcommand = command
                .get_subcommands()
                .find(|s| s.get_name() == word || s.get_all_aliases().any(|a| a == word))
                .cloned();
        } else {
            parsed.positionals += 1;
        }
        i += 1;
    }
    parsed
}

fn long_flags(command: &clap::Command) -> Vec<String> {
    command
        .get_arguments()
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .filter(|f| f != "--help")
        .collect()
}

/// Cobra's answer: the candidates, then `:4`.
pub fn answer(candidates: &[String]) -> String {
    let mut out = String::new();
    for c in candidates {
        out.push_str(c);
        out.push('\n');
    }
    out.push_str(&format!(":{NO_FILE_COMPLETION}\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        let mut w: Vec<String> = text.split(' ').map(str::to_owned).collect();
        if text.is_empty() {
            w = vec![String::new()];
        }
        w
    }

    #[test]
    fn subcommands_then_names_then_values() {
        let Offer::Words(first) = plan(&words("")) else {
            panic!("words expected")
        };
        assert!(first.contains(&"visualize".to_owned()));
        assert!(first.contains(&"wait".to_owned()));
        assert_eq!(plan(&words("vi")), Offer::Words(vec!["visualize".into()]));
        assert_eq!(
            plan(&words("-n ns tree par")),
            Offer::RunNames {
                namespace: Some("ns".into()),
                prefix: "par".into()
            }
        );
        assert_eq!(
            plan(&words("graph x --format m")),
            Offer::Words(vec!["mermaid".into()])
        );
        assert_eq!(
            plan(&words("completion ")),
            Offer::Words(vec!["bash".into(), "zsh".into(), "fish".into()])
        );
        assert_eq!(plan(&words("status x ")), Offer::Words(vec![]));
        let Offer::Words(flags) = plan(&words("visualize x --w")) else {
            panic!("words expected")
        };
        assert_eq!(flags, vec!["--watch".to_owned()]);
        assert_eq!(answer(&["a".into(), "b".into()]), "a\nb\n:4\n");
        assert_eq!(
            plan(&words("res")),
            Offer::Words(vec!["resume".into(), "resubmit".into()])
        );
        assert_eq!(
            plan(&words("retry x --st")),
            Offer::Words(vec!["--step".into()])
        );
        assert_eq!(
            plan(&words("retry --step g/a ")),
            Offer::RunNames {
                namespace: None,
                prefix: String::new()
            }
        );
    }
}
