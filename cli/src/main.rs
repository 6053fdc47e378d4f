//! `kubectl-jobsmith` (also `kubectl-managedjob` and `kubectl_complete-jobsmith` by name).

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use jobsmith_cli::args::Cli;
use jobsmith_cli::complete::{self, Offer};
use jobsmith_cli::kinds::RunKind;
use jobsmith_cli::{Personality, client, commands};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().collect();
    let program = args.first().cloned().unwrap_or_default();
    let mut personality = Personality::from_program(&program);
    if args.get(1).map(String::as_str) == Some("__complete") {
        args.remove(1);
        personality = Personality::Complete;
    }
    if personality == Personality::Complete {
        let seed = program.ends_with("kubectl_complete-managedjob");
        print!(
            "{}",
            completions(args.get(1..).unwrap_or_default(), seed).await
        );
        return ExitCode::SUCCESS;
    }
    let (name, bin_name) = match personality {
        Personality::ManagedJob => ("kubectl-managedjob", "kubectl managedjob"),
        _ => ("kubectl-jobsmith", "kubectl jobsmith"),
    };
    let matches = Cli::command()
        .name(name)
        .bin_name(bin_name)
        .get_matches_from(args);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match commands::run(personality, &cli.global, &cli.command).await {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

/// The answer to kubectl's completion request; run names are listed only when the cluster
/// answers (a completion never prints an error). `seed`: `kubectl managedjob`, whose commands
/// are visualize, list and status, of ManagedJobs.
async fn completions(words: &[String], seed: bool) -> String {
    let seed_commands = ["visualize", "tree", "list", "ls", "status"];
    let candidates = match complete::plan(words) {
        Offer::Words(mut found) => {
            let commands: Vec<String> = Cli::command()
                .get_subcommands()
                .map(|c| c.get_name().to_owned())
                .collect();
            // The top level offers command names: keep the seed's three.
            if seed && !found.is_empty() && found.iter().all(|w| commands.contains(w)) {
                found.retain(|w| seed_commands.contains(&w.as_str()));
            }
            found
        }
        Offer::RunNames { namespace, prefix } => {
            let global = jobsmith_cli::args::GlobalArgs {
                namespace,
                ..Default::default()
            };
            let mut names = Vec::new();
            if let Ok(session) = client::connect(&global).await {
                let kinds: &[RunKind] = if seed {
                    &[RunKind::ManagedJob]
                } else {
                    &RunKind::ALL
                };
                for &kind in kinds {
                    if let Ok(runs) = session.list(kind).await {
                        names.extend(runs.iter().map(|r| r.name().to_owned()));
                    }
                }
            }
            names.sort();
            names.dedup();
            names.retain(|n| n.starts_with(&prefix));
            names
        }
    };
    complete::answer(&candidates)
}
