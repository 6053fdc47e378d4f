//! The bad-input corpus (`e2e/testdata/bad-input/`, format in its README) against one manager.
//!
//! Every manifest is created with strict field validation (as `kubectl apply` does) into
//! one namespace, all at once, while a valid workflow runs beside them. Each file's header says
//! what must happen to its last document:
//!
//! - `# expect-rejected: <text>`: the API server refuses it and its message contains the text;
//! - `# expect-stalled: <Reason> <text>`: the manager ends it (`phase: Failed` for the run kinds,
//!   `Stalled=True` and `Ready=False` with that reason, a message with the text, the current
//!   `observedGeneration`, a Warning Event) without creating any Job, and then leaves it alone;
//! - `# expect-waiting: <Reason> <text>`: as stalled, but it waits (`phase: Pending`,
//!   `Ready=False` with that reason, not `Stalled`): a missing or unusable JobTemplate;
//! - `# expect-succeeded: <note>`: odd but valid input that must run to `Succeeded` (DaemonJob
//!   pods must run on their own node and never on an excluded one).
//!
//! Then the manager must still run, answer `/readyz`, never have logged a panic, and the valid
//! workflow must have succeeded. One manager, one watch per kind, concurrent applies: the whole
//! corpus takes about as long as its slowest object.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use futures::StreamExt;
use jobsmith_api::labels::{NODE, OWNER_KIND, OWNER_NAME};
use jobsmith_api::{DaemonJob, JobFlow, JobRun, JobTemplate, ManagedJob};
use jobsmith_e2e::{
    FIELD_MANAGER, TestNamespace, client, http_get, install_crds, list_events, list_jobs,
    list_pods, parse_yaml, workspace_root,
};
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::Value;
use support::start_manager_process;

/// The corpus directory, relative to the workspace root.
const CORPUS_DIR: &str = "e2e/testdata/bad-input";
/// Replaced by the name of the second namespace (JobTemplates that must never be used across).
const OTHER_NAMESPACE: &str = "__OTHER_NAMESPACE__";
/// Fewest manifests the corpus must hold.
const MIN_CASES: usize = 70;
/// How long every object may take to reach its expected state.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a stalled or waiting object is watched afterwards for further writes.
const QUIET_WINDOW: Duration = Duration::from_secs(6);
/// Status updates a stalled or waiting object may still get during the quiet window (a capped
/// backoff may retry a few times; a request loop rewrites it dozens of times a second).
const QUIET_MAX_UPDATES: u64 = 3;
/// Longest status or condition message accepted (an echo of the input must be cut).
const MAX_MESSAGE_BYTES: usize = 4096;
/// Applies in flight at once.
const APPLY_CONCURRENCY: usize = 16;
/// The kinds whose status has a phase.
const RUN_KINDS: [&str; 4] = ["ManagedJob", "JobFlow", "DaemonJob", "JobRun"];
/// The five kinds.
const KINDS: [&str; 5] = [
    "ManagedJob",
    "JobFlow",
    "DaemonJob",
    "JobTemplate",
    "JobRun",
];

/// What must happen to a case's last document.
#[derive(Clone, Debug, PartialEq)]
enum Expect {
    Rejected { texts: Vec<String> },
    Stalled { reason: String, texts: Vec<String> },
    Waiting { reason: String, texts: Vec<String> },
    Succeeded,
}

impl Expect {
    fn label(&self) -> &'static str {
        match self {
            Expect::Rejected { .. } => "rejected",
            Expect::Stalled { .. } => "stalled",
            Expect::Waiting { .. } => "waiting",
            Expect::Succeeded => "succeeded",
        }
    }

    /// Stalled or waiting: the manager must settle it without a Job and then leave it alone.
    fn is_settled_without_jobs(&self) -> bool {
        matches!(self, Expect::Stalled { .. } | Expect::Waiting { .. })
    }
}

/// One manifest file.
struct Case {
    file: String,
    expect: Expect,
    /// The documents in order; the last one is the object under test, the others support it.
    objects: Vec<DynamicObject>,
}

impl Case {
    fn target(&self) -> &DynamicObject {
        // `load` refuses files without documents.
        &self.objects[self.objects.len() - 1]
    }

    fn kind(&self) -> String {
        kind_of(self.target())
    }

    fn key(&self) -> (String, String) {
        (self.kind(), self.target().name_any())
    }
}

fn kind_of(object: &DynamicObject) -> String {
    object
        .types
        .as_ref()
        .map(|t| t.kind.clone())
        .unwrap_or_default()
}

/// Parses the header (the leading `#` lines) of a corpus file.
fn parse_expect(file: &str, text: &str) -> Result<Expect> {
    let mut found: Option<Expect> = None;
    for line in text.lines().take_while(|l| l.starts_with('#')) {
        let Some(directive) = line.strip_prefix("# expect-") else {
            continue;
        };
        let (what, rest) = directive.split_once(':').unwrap_or((directive, ""));
        let rest = rest.trim();
        let next = match what {
            "rejected" => {
                ensure!(!rest.is_empty(), "{file}: empty expect-rejected text");
                Expect::Rejected {
                    texts: vec![rest.to_owned()],
                }
            }
            "stalled" | "waiting" => {
                let (reason, text) = rest.split_once(' ').unwrap_or((rest, ""));
                ensure!(
                    !reason.is_empty() && !text.trim().is_empty(),
                    "{file}: expect-{what} needs `<Reason> <text>`"
                );
                let (reason, texts) = (reason.to_owned(), vec![text.trim().to_owned()]);
                if what == "stalled" {
                    Expect::Stalled { reason, texts }
                } else {
                    Expect::Waiting { reason, texts }
                }
            }
            "succeeded" => Expect::Succeeded,
            other => bail!("{file}: unknown directive `expect-{other}`"),
        };
        found = Some(match (found, next) {
            (None, next) => next,
            (Some(Expect::Rejected { mut texts }), Expect::Rejected { texts: more }) => {
                texts.extend(more);
                Expect::Rejected { texts }
            }
            (
                Some(Expect::Stalled { reason, mut texts }),
                Expect::Stalled {
                    reason: again,
                    texts: more,
                },
            ) if reason == again => {
                texts.extend(more);
                Expect::Stalled { reason, texts }
            }
            (
                Some(Expect::Waiting { reason, mut texts }),
                Expect::Waiting {
                    reason: again,
                    texts: more,
                },
            ) if reason == again => {
                texts.extend(more);
                Expect::Waiting { reason, texts }
            }
            (Some(Expect::Succeeded), Expect::Succeeded) => Expect::Succeeded,
            (Some(first), next) => bail!(
                "{file}: conflicting expectations ({} and {})",
                first.label(),
                next.label()
            ),
        });
    }
    found.ok_or_else(|| anyhow!("{file}: no `# expect-...` line in its header"))
}

/// Every case of the corpus, by file name; `other` replaces [`OTHER_NAMESPACE`].
fn load(other: &str) -> Result<Vec<Case>> {
    let dir = workspace_root().join(CORPUS_DIR);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    let mut cases = Vec::with_capacity(paths.len());
    for path in paths {
        let file = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let expect = parse_expect(&file, &text)?;
        let objects = parse_yaml(&text.replace(OTHER_NAMESPACE, other))
            .with_context(|| format!("parsing {file}"))?;
        ensure!(!objects.is_empty(), "{file} holds no document");
        cases.push(Case {
            file,
            expect,
            objects,
        });
    }
    Ok(cases)
}

/// The corpus is big enough, covers every kind both ways, and no two files settle one object.
fn check_corpus(cases: &[Case]) -> Result<()> {
    ensure!(
        cases.len() >= MIN_CASES,
        "{CORPUS_DIR} holds {} manifests, at least {MIN_CASES} expected",
        cases.len()
    );
    for kind in KINDS {
        for outcome in ["rejected", "stalled"] {
            ensure!(
                cases
                    .iter()
                    .any(|c| c.kind() == kind && c.expect.label() == outcome),
                "{CORPUS_DIR} has no {kind} that is expected {outcome}"
            );
        }
    }
    let mut names = BTreeSet::new();
    for case in cases {
        ensure!(
            KINDS.contains(&case.kind().as_str()),
            "{}: the last document is a {}, not one of the five kinds",
            case.file,
            case.kind()
        );
        ensure!(
            matches!(case.expect, Expect::Rejected { .. }) || names.insert(case.key()),
            "{}: {:?} is the object of another file too",
            case.file,
            case.key()
        );
    }
    Ok(())
}

/// The API resource of each of the five kinds (no discovery needed).
fn resources() -> HashMap<String, ApiResource> {
    [
        ApiResource::erase::<ManagedJob>(&()),
        ApiResource::erase::<JobFlow>(&()),
        ApiResource::erase::<DaemonJob>(&()),
        ApiResource::erase::<JobTemplate>(&()),
        ApiResource::erase::<JobRun>(&()),
    ]
    .into_iter()
    .map(|r| (r.kind.clone(), r))
    .collect()
}

/// How one apply ended.
enum Applied {
    Accepted,
    /// The API server refused it, with its message.
    Refused(String),
}

/// Creates one object (in its own namespace or `ns`) as `kubectl apply` does for a new object: a
/// POST with strict field validation, so unknown fields are refused and schema errors come back
/// in the API server's validation words (a server-side apply reports type errors of its own).
async fn apply(
    client: &Client,
    resources: &HashMap<String, ApiResource>,
    ns: &str,
    object: &DynamicObject,
) -> Result<Applied> {
    let kind = kind_of(object);
    let resource = resources
        .get(&kind)
        .ok_or_else(|| anyhow!("the corpus may hold only the five kinds, not {kind:?}"))?;
    let namespace = object.metadata.namespace.as_deref().unwrap_or(ns);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
    let body = serde_json::to_vec(object)?;
    let mut request = kube::core::Request::new(api.resource_url())
        .create(&PostParams::default(), body)
        .map_err(|e| anyhow!("building the create of {kind}: {e}"))?;
    *request.uri_mut() = format!(
        "{}?fieldManager={FIELD_MANAGER}&fieldValidation=Strict",
        api.resource_url()
    )
    .parse()?;
    match client.request::<DynamicObject>(request).await {
        Ok(_) => Ok(Applied::Accepted),
        Err(kube::Error::Api(status)) => Ok(Applied::Refused(status.message)),
        Err(error) => Err(anyhow!("creating {kind}/{}: {error}", object.name_any())),
    }
}

/// Applies every document of a case in order; `None` when it went as expected, else the problem.
async fn apply_case(
    client: &Client,
    resources: &HashMap<String, ApiResource>,
    ns: &str,
    case: &Case,
) -> Option<String> {
    let last = case.objects.len() - 1;
    for (i, object) in case.objects.iter().enumerate() {
        let what = format!("{}/{}", kind_of(object), object.name_any());
        let applied = match apply(client, resources, ns, object).await {
            Ok(applied) => applied,
            Err(error) => return Some(format!("{what}: {error:#}")),
        };
        match (&case.expect, i == last, applied) {
            (Expect::Rejected { texts }, true, Applied::Refused(message)) => {
                let missing: Vec<&String> =
                    texts.iter().filter(|t| !message.contains(*t)).collect();
                return (!missing.is_empty()).then(|| {
                    format!(
                        "{what} was refused, but the message lacks {missing:?}: {}",
                        shorten(&message)
                    )
                });
            }
            (Expect::Rejected { .. }, true, Applied::Accepted) => {
                return Some(format!("{what} was accepted; expected a refusal"));
            }
            (_, _, Applied::Refused(message)) => {
                return Some(format!("{what} was refused: {}", shorten(&message)));
            }
            (_, _, Applied::Accepted) => {}
        }
    }
    None
}

fn shorten(text: &str) -> String {
    const MAX: usize = 600;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut cut = MAX;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… ({} bytes)", &text[..cut], text.len())
}

/// The latest state of each watched object and how many times it changed.
#[derive(Default)]
struct Seen {
    object: Option<DynamicObject>,
    updates: u64,
}

type Board = Arc<Mutex<HashMap<(String, String), Seen>>>;

fn lock(board: &Board) -> std::sync::MutexGuard<'_, HashMap<(String, String), Seen>> {
    board.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One watch per kind on `ns`, feeding `board` until aborted.
fn watch_all(
    client: &Client,
    ns: &str,
    resources: &HashMap<String, ApiResource>,
    board: &Board,
) -> Vec<tokio::task::JoinHandle<()>> {
    resources
        .values()
        .map(|resource| {
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, resource);
            let kind = resource.kind.clone();
            let board = board.clone();
            tokio::spawn(async move {
                let mut events = watcher(api, watcher::Config::default())
                    .default_backoff()
                    .boxed();
                while let Some(event) = events.next().await {
                    match event {
                        Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                            let mut board = lock(&board);
                            let seen = board.entry((kind.clone(), o.name_any())).or_default();
                            seen.updates += 1;
                            seen.object = Some(o);
                        }
                        Ok(watcher::Event::Delete(o)) => {
                            lock(&board).remove(&(kind.clone(), o.name_any()));
                        }
                        Ok(_) => {}
                        Err(error) => eprintln!("watching {kind}: {error}"),
                    }
                }
            })
        })
        .collect()
}

fn condition<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

fn field<'a>(value: Option<&'a Value>, name: &str) -> &'a str {
    value
        .and_then(|v| v.get(name))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Whether the object is in the state its case expects; the error says what is missing.
fn check_state(case: &Case, object: Option<&DynamicObject>) -> Result<(), String> {
    let object = object.ok_or("not seen by the watch")?;
    let status = object.data.get("status").ok_or("no status")?;
    let run_kind = RUN_KINDS.contains(&case.kind().as_str());
    let phase = status.get("phase").and_then(Value::as_str).unwrap_or("");
    let ready = condition(status, "Ready");
    let stalled = condition(status, "Stalled");
    let (reason, texts, wanted_phase) = match &case.expect {
        Expect::Rejected { .. } => return Err("expected a refusal, yet it exists".to_owned()),
        Expect::Succeeded => {
            if phase != "Succeeded" || field(ready, "status") != "True" {
                return Err(format!(
                    "phase {phase:?}, Ready {:?}; expected Succeeded, Ready=True",
                    field(ready, "status")
                ));
            }
            return Ok(());
        }
        Expect::Stalled { reason, texts } => {
            if field(stalled, "status") != "True" || field(stalled, "reason") != reason {
                return Err(format!(
                    "Stalled is {:?} reason {:?}; expected True reason {reason}",
                    field(stalled, "status"),
                    field(stalled, "reason")
                ));
            }
            (reason, texts, "Failed")
        }
        Expect::Waiting { reason, texts } => {
            if field(stalled, "status") == "True" {
                return Err("Stalled=True; expected it to wait".to_owned());
            }
            (reason, texts, "Pending")
        }
    };
    if run_kind && phase != wanted_phase {
        return Err(format!("phase {phase:?}; expected {wanted_phase}"));
    }
    if field(ready, "status") != "False" || field(ready, "reason") != reason {
        return Err(format!(
            "Ready is {:?} reason {:?}; expected False reason {reason}",
            field(ready, "status"),
            field(ready, "reason")
        ));
    }
    let mut messages = vec![("the Ready condition", field(ready, "message"))];
    if run_kind {
        messages.push((
            "status.message",
            status
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        ));
    }
    for (where_, message) in messages {
        let missing: Vec<&String> = texts.iter().filter(|t| !message.contains(*t)).collect();
        if !missing.is_empty() {
            return Err(format!(
                "{where_} lacks {missing:?}: {:?}",
                shorten(message)
            ));
        }
    }
    let generation = object.metadata.generation;
    let observed = status.get("observedGeneration").and_then(Value::as_i64);
    if observed != generation {
        return Err(format!(
            "observedGeneration {observed:?}, metadata.generation {generation:?}"
        ));
    }
    Ok(())
}

/// Every message of a status is bounded (an input echoed in an API message must be cut).
fn check_bounded(object: &DynamicObject) -> Result<(), String> {
    let Some(status) = object.data.get("status") else {
        return Ok(());
    };
    let mut messages = vec![("status.message", status.get("message"))];
    for c in status
        .get("conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        messages.push(("a condition message", c.get("message")));
    }
    for (where_, message) in messages {
        let len = message.and_then(Value::as_str).map_or(0, str::len);
        if len > MAX_MESSAGE_BYTES {
            return Err(format!(
                "{where_} is {len} bytes (at most {MAX_MESSAGE_BYTES})"
            ));
        }
    }
    Ok(())
}

/// A valid workflow applied together with the corpus: it must succeed meanwhile.
const VALID_WORKFLOW: &str = r#"
# A valid three-step workflow run beside the corpus.
# expect-succeeded: the manager keeps serving valid work
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {name: valid-beside-the-corpus}
spec:
  retries: 0
  groups:
  - name: g
    jobs:
    - {name: a, image: example.invalid/fake:1}
    - {name: b, image: example.invalid/fake:1}
    - {name: c, image: example.invalid/fake:1}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_bad_input_is_refused_or_settled_and_the_manager_keeps_serving() -> Result<()> {
    let client = client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::new(&client, "bad-input").await?;
    let other = TestNamespace::new(&client, "bad-input-other").await?;

    let mut cases = load(other.name())?;
    check_corpus(&cases)?;
    let corpus_size = cases.len();
    cases.push(Case {
        file: "(valid workflow)".to_owned(),
        expect: parse_expect("(valid workflow)", VALID_WORKFLOW.trim_start())?,
        objects: parse_yaml(VALID_WORKFLOW)?,
    });

    // One manager for everything, watching both namespaces (so that a JobTemplate of the other
    // namespace is in its cache and must still never be used).
    let mut started = start_manager_process(
        "bad-input",
        &[
            "--namespace",
            ns.name(),
            "--namespace",
            other.name(),
            "--leader-election-namespace",
            ns.name(),
            "--event-burst",
            "1000",
        ],
        // Info, not debug: refusals echo inputs of up to 1 MiB.
        &[("LOG_LEVEL", "info")],
    )?;
    started
        .manager
        .wait_for_log("cache synced; controller ready", Duration::from_secs(60))
        .await?;

    let resources = resources();
    let board: Board = Arc::default();
    let watches = watch_all(&client, ns.name(), &resources, &board);

    let started_at = tokio::time::Instant::now();
    let apply_problems: Vec<(usize, String)> = futures::stream::iter(cases.iter().enumerate())
        .map(|(i, case)| {
            let (client, resources, ns) = (&client, &resources, ns.name());
            async move {
                apply_case(client, resources, ns, case)
                    .await
                    .map(|p| (i, p))
            }
        })
        .buffer_unordered(APPLY_CONCURRENCY)
        .filter_map(|p| async move { p })
        .collect()
        .await;
    let applied_in = started_at.elapsed();

    let mut failures: Vec<String> = apply_problems
        .iter()
        .map(|(i, p)| format!("{}: {p}", cases[*i].file))
        .collect();
    let broken: BTreeSet<usize> = apply_problems.iter().map(|(i, _)| *i).collect();
    let watched: Vec<usize> = (0..cases.len())
        .filter(|i| !broken.contains(i) && !matches!(cases[*i].expect, Expect::Rejected { .. }))
        .collect();

    // Wait (in memory, from the watches) until every object is where it should be.
    let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
    let mut first_met: HashMap<usize, Duration> = HashMap::new();
    loop {
        let pending = {
            let board = lock(&board);
            let mut pending = 0;
            for i in &watched {
                let case = &cases[*i];
                let seen = board.get(&case.key()).and_then(|s| s.object.as_ref());
                if check_state(case, seen).is_ok() {
                    first_met.entry(*i).or_insert_with(|| started_at.elapsed());
                } else {
                    pending += 1;
                }
            }
            pending
        };
        if pending == 0 || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let last_met = first_met.values().max().copied().unwrap_or_default();

    // Then nothing more may be written to what has settled (no request loop).
    let before: HashMap<usize, u64> = {
        let board = lock(&board);
        watched
            .iter()
            .map(|i| (*i, board.get(&cases[*i].key()).map_or(0, |s| s.updates)))
            .collect()
    };
    tokio::time::sleep(QUIET_WINDOW).await;

    let jobs = list_jobs(&client, ns.name()).await?;
    let events = list_events(&client, ns.name()).await?;
    let pods = list_pods(&client, ns.name()).await?;
    {
        let board = lock(&board);
        for i in &watched {
            let case = &cases[*i];
            let seen = board.get(&case.key());
            let object = seen.and_then(|s| s.object.as_ref());
            if let Err(problem) = check_state(case, object) {
                let status = object
                    .and_then(|o| o.data.get("status"))
                    .map_or_else(|| "none".to_owned(), Value::to_string);
                failures.push(format!(
                    "{} ({}): {problem}; status: {}",
                    case.file,
                    case.expect.label(),
                    shorten(&status)
                ));
            }
            let Some(object) = object else { continue };
            if let Err(problem) = check_bounded(object) {
                failures.push(format!("{}: {problem}", case.file));
            }
            let uid = object.uid().unwrap_or_default();
            if case.expect.is_settled_without_jobs() {
                let updates = seen.map_or(0, |s| s.updates) - before.get(i).copied().unwrap_or(0);
                if updates > QUIET_MAX_UPDATES {
                    failures.push(format!(
                        "{}: written {updates} times in the {QUIET_WINDOW:?} after it settled (a request loop?)",
                        case.file
                    ));
                }
                let owned: Vec<String> = jobs
                    .iter()
                    .filter(|j| {
                        j.owner_references()
                            .iter()
                            .any(|o| o.uid == uid && o.controller == Some(true))
                    })
                    .map(ResourceExt::name_any)
                    .collect();
                if !owned.is_empty() {
                    failures.push(format!("{}: Jobs were created: {owned:?}", case.file));
                }
                let warned = events.iter().any(|e| {
                    e.type_.as_deref() == Some("Warning")
                        && e.involved_object.uid.as_deref() == Some(uid.as_str())
                });
                if !warned {
                    failures.push(format!("{}: no Warning Event about it", case.file));
                }
            }
            if case.kind() == "DaemonJob" && matches!(case.expect, Expect::Succeeded) {
                failures.extend(
                    check_daemonjob_pods(object, &pods)
                        .into_iter()
                        .map(|p| format!("{}: {p}", case.file)),
                );
            }
        }
    }
    for handle in &watches {
        handle.abort();
    }

    // The manager survived all of it.
    let manager = &mut started.manager;
    if !manager.is_running() {
        failures.push(format!("the manager exited: {:?}", manager.exit_status()));
    }
    let readyz = http_get(&format!("127.0.0.1:{}", started.health_port), "/readyz").await;
    if !matches!(readyz, Ok((200, _))) {
        failures.push(format!("/readyz answered {readyz:?}"));
    }
    let logs = manager.logs();
    if let Some(line) = logs.lines().find(|l| l.contains("panicked")) {
        failures.push(format!("the manager logged a panic: {}", shorten(line)));
    }

    eprintln!(
        "bad-input corpus: {corpus_size} manifests applied in {applied_in:?}; {} of {} objects \
         reached their expected state, the last after {last_met:?}; {} failures",
        first_met.len(),
        watched.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of the bad-input expectations failed (manager log: {}):\n{}",
        failures.len(),
        manager.log_path().display(),
        failures.join("\n")
    );
    Ok(())
}

/// Every pod of a DaemonJob runs on the node of its Job's step, and no pod or Job is on an
/// excluded node.
fn check_daemonjob_pods(
    object: &DynamicObject,
    pods: &[k8s_openapi::api::core::v1::Pod],
) -> Vec<String> {
    let spec = object.data.get("spec");
    let mut excluded: BTreeSet<String> = spec
        .and_then(|s| s.get("excludeNodes"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    excluded.extend(
        field(spec, "excludeNodeList")
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned),
    );
    let name = object.name_any();
    let mine: Vec<_> = pods
        .iter()
        .filter(|p| {
            let labels = p.labels();
            labels.get(OWNER_KIND).map(String::as_str) == Some("DaemonJob")
                && labels.get(OWNER_NAME) == Some(&name)
        })
        .collect();
    let mut problems = Vec::new();
    if mine.is_empty() {
        problems.push("no pod of it found".to_owned());
    }
    for pod in mine {
        let step = pod.labels().get(NODE).cloned().unwrap_or_default();
        let ran_on = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        if ran_on != step {
            problems.push(format!(
                "pod {} of the step for node {step:?} ran on {ran_on:?}",
                pod.name_any()
            ));
        }
        if excluded.contains(&step) || excluded.contains(&ran_on) {
            problems.push(format!(
                "pod {} is on an excluded node ({step:?}, ran on {ran_on:?})",
                pod.name_any()
            ));
        }
    }
    problems
}

#[test]
fn the_header_grammar() {
    let stalled = parse_expect(
        "f",
        "# what\n# expect-stalled: InvalidSpec a b\n# expect-stalled: InvalidSpec c\nkind: X\n",
    )
    .ok();
    assert_eq!(
        stalled,
        Some(Expect::Stalled {
            reason: "InvalidSpec".to_owned(),
            texts: vec!["a b".to_owned(), "c".to_owned()]
        })
    );
    assert!(
        parse_expect(
            "f",
            "# expect-stalled: InvalidSpec a\n# expect-rejected: b\n"
        )
        .is_err()
    );
    assert!(
        parse_expect(
            "f",
            "# expect-stalled: InvalidSpec a\n# expect-stalled: Other b\n"
        )
        .is_err()
    );
    assert!(parse_expect("f", "# expect-stalled: InvalidSpec\n").is_err());
    assert!(parse_expect("f", "# nothing\nkind: X\n# expect-rejected: late\n").is_err());
    assert_eq!(
        parse_expect("f", "# expect-succeeded\n").ok(),
        Some(Expect::Succeeded)
    );
}

/// The corpus parses and is well formed (no cluster needed).
#[test]
fn the_corpus_is_well_formed() -> Result<()> {
    check_corpus(&load("other-namespace")?)
}
