//! Step outputs (docs/integrations.md "Step outputs"), pure: which outputs a step reads and
//! whether the spec allows it (plan time), what a succeeded step's pods say (read time), and
//! the values set in a dependent's Job (create time). The manager only lists the pods of a
//! succeeded Job once and records what this module extracts.
//!
//! Decisions taken here:
//! - The message read is that of the step's succeeded pod (the one that finished last when a
//!   Job has several), in the container the output names, else the pod's first container.
//! - Without `jsonKey` the value is the whole message with surrounding whitespace trimmed
//!   (`echo 1.2.3 > /dev/termination-log` gives `1.2.3`). With it, the message must be a JSON
//!   object; a string value is taken as is, any other JSON value as its compact JSON text,
//!   `null` counts as missing.
//! - A step's values are at most [`MAX_OUTPUT_BYTES_PER_STEP`] in all and a run's at most
//!   [`MAX_OUTPUT_BYTES_PER_RUN`]; what does not fit is recorded as missing, with why.
//! - A step may only read outputs of steps it depends on, directly or through others
//!   (`InvalidSpec` otherwise): those are terminal before it starts, so a value is either
//!   there or known to be missing, never "not yet".

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use jobsmith_api::outputs::{
    MAX_MISSING_REASON, MAX_OUTPUT_BYTES_PER_RUN, MAX_OUTPUT_BYTES_PER_STEP, MAX_OUTPUT_STEPS,
    StepOutput, StepOutputs,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::compile::{InvalidSpec, PlannedStep};
use crate::schedule::dag::{Dag, Referrer, StepId};

/// An environment variable of a step's Job whose value is another step's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputInput {
    /// The variable's name.
    pub env: String,
    /// The producing step's key (resolved from what the user wrote).
    pub step: String,
    /// The output's name.
    pub output: String,
}

/// Checks every step's inputs against the plan: the producer exists, declares the output, and
/// is upstream of the reader; at most [`MAX_OUTPUT_STEPS`] steps declare outputs.
pub fn check_plan(dag: &Dag, steps: &[PlannedStep]) -> Result<(), InvalidSpec> {
    let producers = steps.iter().filter(|s| !s.outputs.is_empty()).count();
    if producers > MAX_OUTPUT_STEPS {
        return Err(InvalidSpec::Outputs(format!(
            "{producers} steps declare outputs (at most {MAX_OUTPUT_STEPS})"
        )));
    }
    for step in steps {
        let mut names = HashSet::new();
        for output in &step.outputs {
            if !names.insert(output.name.as_str()) {
                return Err(InvalidSpec::Outputs(format!(
                    "step \"{}\": duplicate output \"{}\"",
                    step.key, output.name
                )));
            }
        }
    }
    let mut downstream: HashMap<StepId, Vec<bool>> = HashMap::new();
    for (i, step) in steps.iter().enumerate() {
        for input in &step.inputs {
            let what = format!("step \"{}\": env {}", step.key, input.env);
            let Some(producer) = dag.step_id(&input.step) else {
                return Err(InvalidSpec::Outputs(format!(
                    "{what}: unknown step \"{}\"",
                    input.step
                )));
            };
            let declared = steps
                .get(producer.index())
                .is_some_and(|p| p.outputs.iter().any(|o| o.name == input.output));
            if !declared {
                return Err(InvalidSpec::Outputs(format!(
                    "{what}: step \"{}\" declares no output \"{}\"",
                    input.step, input.output
                )));
            }
            let below = downstream
                .entry(producer)
                .or_insert_with(|| downstream_of(dag, producer));
            if !below.get(i).copied().unwrap_or(false) {
                return Err(InvalidSpec::Outputs(format!(
                    "{what}: reads an output of \"{}\", which is not one of its dependencies (direct or transitive)",
                    input.step
                )));
            }
        }
    }
    Ok(())
}

/// Per step: whether it starts only after `producer` is terminal (it depends on it directly,
/// through other steps, or through groups).
pub fn downstream_of(dag: &Dag, producer: StepId) -> Vec<bool> {
    let mut below = vec![false; dag.len()];
    let mut seen_groups = vec![false; dag.group_count()];
    let mut queue = VecDeque::from([producer]);
    let mut push_referrer = |referrer: Referrer, queue: &mut VecDeque<StepId>| match referrer {
        Referrer::Step(s) => queue.push_back(s),
        Referrer::Gate(g) => {
            if let Some(seen) = seen_groups.get_mut(g.index())
                && !*seen
            {
                *seen = true;
                queue.extend(dag.group_members(g).iter().copied());
            }
        }
    };
    while let Some(step) = queue.pop_front() {
        if step != producer {
            match below.get_mut(step.index()) {
                Some(done) if *done => continue,
                Some(slot) => *slot = true,
                None => continue,
            }
        }
        for dependent in dag.step_dependents(step) {
            push_referrer(dependent.referrer, &mut queue);
        }
        // A group completes only after each of its steps: its dependents come after them.
        if let Some(group) = dag.step_group(step) {
            for dependent in dag.group_dependents(group) {
                push_referrer(dependent.referrer, &mut queue);
            }
        }
    }
    below
}

/// The outputs of a succeeded step from its Job's pods (one list of the Job's pods).
pub fn read_outputs(key: &str, declared: &[StepOutput], pods: &[Pod]) -> StepOutputs {
    let mut read = StepOutputs {
        step: key.to_owned(),
        ..StepOutputs::default()
    };
    let pod = succeeded_pod(pods);
    let mut budget = MAX_OUTPUT_BYTES_PER_STEP;
    for output in declared {
        let value = pod
            .ok_or_else(|| "no succeeded pod of the Job was found".to_owned())
            .and_then(|pod| termination_message(pod, output.container.as_deref()))
            .and_then(|message| value_of(output, &message));
        match value {
            Ok(value) if value.len() > budget => {
                let why = format!(
                    "the step's values are {} bytes, more than {MAX_OUTPUT_BYTES_PER_STEP}",
                    MAX_OUTPUT_BYTES_PER_STEP - budget + value.len()
                );
                read.missing.insert(output.name.clone(), why);
            }
            Ok(value) => {
                budget -= value.len();
                read.values.insert(output.name.clone(), value);
            }
            Err(why) => {
                read.missing
                    .insert(output.name.clone(), bounded_reason(&why));
            }
        }
    }
    read
}

/// The outputs of a step whose pods can no longer be read (its Job is gone).
pub fn unreadable_outputs(key: &str, declared: &[StepOutput], why: &str) -> StepOutputs {
    StepOutputs {
        step: key.to_owned(),
        values: BTreeMap::new(),
        missing: declared
            .iter()
            .map(|o| (o.name.clone(), bounded_reason(why)))
            .collect(),
    }
}

/// `read` as it may be kept beside `kept` (the run's outputs so far): when its values would
/// take the run past [`MAX_OUTPUT_BYTES_PER_RUN`], they are recorded as missing.
pub fn within_run_bound<'a>(
    read: StepOutputs,
    kept: impl IntoIterator<Item = &'a StepOutputs>,
) -> StepOutputs {
    let used: usize = kept
        .into_iter()
        .filter(|k| k.step != read.step)
        .map(StepOutputs::value_bytes)
        .sum();
    if used + read.value_bytes() <= MAX_OUTPUT_BYTES_PER_RUN {
        return read;
    }
    let why = format!("the run's outputs would exceed {MAX_OUTPUT_BYTES_PER_RUN} bytes");
    let mut bounded = StepOutputs {
        step: read.step,
        values: BTreeMap::new(),
        missing: read.missing,
    };
    for name in read.values.into_keys() {
        bounded.missing.insert(name, why.clone());
    }
    bounded
}

/// Why a step's inputs cannot be set (now).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputProblem {
    /// An output it reads does not exist: the step fails with `OutputMissing`.
    Missing(String),
    /// The producer succeeded but its outputs were not read yet: the step waits.
    Unread {
        /// The producer's key.
        step: String,
    },
}

/// The values of a step's inputs, as `(env name, value)`. `succeeded(key)` tells whether the
/// producer succeeded; `recorded(key)` gives what was read of its outputs.
pub fn input_values<'a>(
    inputs: &[OutputInput],
    succeeded: impl Fn(&str) -> bool,
    recorded: impl Fn(&str) -> Option<&'a StepOutputs>,
) -> Result<Vec<(String, String)>, InputProblem> {
    let mut values = Vec::with_capacity(inputs.len());
    for input in inputs {
        let (env, step, output) = (&input.env, &input.step, &input.output);
        if !succeeded(step) {
            return Err(InputProblem::Missing(format!(
                "env {env}: step \"{step}\" did not succeed, so its output \"{output}\" does not exist"
            )));
        }
        let Some(read) = recorded(step) else {
            return Err(InputProblem::Unread { step: step.clone() });
        };
        match (read.values.get(output), read.missing.get(output)) {
            (Some(value), _) => values.push((env.clone(), value.clone())),
            (None, Some(why)) => {
                return Err(InputProblem::Missing(format!(
                    "env {env}: output \"{output}\" of step \"{step}\" is missing: {why}"
                )));
            }
            (None, None) => {
                return Err(InputProblem::Missing(format!(
                    "env {env}: output \"{output}\" of step \"{step}\" was not recorded when the step succeeded"
                )));
            }
        }
    }
    Ok(values)
}

/// Sets the values of a step's inputs in its built Job: every container and init container
/// entry of that name (the compile step put a name without value where the variable belongs).
pub fn set_input_values(job: &mut Job, values: &[(String, String)]) {
    if values.is_empty() {
        return;
    }
    let Some(pod) = job.spec.as_mut().and_then(|s| s.template.spec.as_mut()) else {
        return;
    };
    let containers = pod
        .containers
        .iter_mut()
        .chain(pod.init_containers.iter_mut().flatten());
    for container in containers {
        set_in_container(container, values);
    }
}

fn set_in_container(container: &mut Container, values: &[(String, String)]) {
    for var in container.env.iter_mut().flatten() {
        if let Some((_, value)) = values.iter().find(|(name, _)| *name == var.name) {
            var.value = Some(value.clone());
            var.value_from = None;
        }
    }
}

/// The succeeded pod that finished last (by its containers' finish times, then by name).
fn succeeded_pod(pods: &[Pod]) -> Option<&Pod> {
    pods.iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded"))
        .max_by(|a, b| (finished_at(a), &a.metadata.name).cmp(&(finished_at(b), &b.metadata.name)))
}

fn finished_at(pod: &Pod) -> Option<&Time> {
    pod.status
        .as_ref()?
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .max()
}

/// The termination message of `container` (default: the pod's first container).
fn termination_message(pod: &Pod, container: Option<&str>) -> Result<String, String> {
    let first = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .map(|c| c.name.as_str());
    let Some(name) = container.or(first) else {
        return Err("the pod has no container".to_owned());
    };
    let status = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|all| all.iter().find(|c| c.name == name))
        .ok_or_else(|| format!("the pod has no status of container \"{name}\""))?;
    let message = status
        .state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .and_then(|t| t.message.as_deref())
        .unwrap_or_default();
    if message.trim().is_empty() {
        return Err(format!("container \"{name}\" left no termination message"));
    }
    Ok(message.to_owned())
}

/// The value of one output in a termination message (see the module doc).
pub fn value_of(output: &StepOutput, message: &str) -> Result<String, String> {
    let Some(key) = &output.json_key else {
        return Ok(message.trim().to_owned());
    };
    let parsed: serde_json::Value = serde_json::from_str(message)
        .map_err(|e| format!("the termination message is not JSON ({e})"))?;
    let serde_json::Value::Object(fields) = parsed else {
        return Err("the termination message is not a JSON object".to_owned());
    };
    match fields.get(key) {
        None | Some(serde_json::Value::Null) => {
            Err(format!("the termination message has no key \"{key}\""))
        }
        Some(serde_json::Value::String(text)) => Ok(text.clone()),
        Some(other) => Ok(other.to_string()),
    }
}

fn bounded_reason(why: &str) -> String {
    if why.len() <= MAX_MISSING_REASON {
        return why.to_owned();
    }
    let mut end = MAX_MISSING_REASON - 3;
    while !why.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &why[..end])
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStatus, PodSpec, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::jiff::Timestamp;

    fn output(name: &str, json_key: Option<&str>) -> StepOutput {
        StepOutput {
            name: name.into(),
            json_key: json_key.map(Into::into),
            ..StepOutput::default()
        }
    }

    fn pod(name: &str, phase: &str, finished: i64, messages: &[(&str, Option<&str>)]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                containers: messages
                    .iter()
                    .map(|(c, _)| Container {
                        name: (*c).into(),
                        ..Container::default()
                    })
                    .collect(),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                container_statuses: Some(
                    messages
                        .iter()
                        .map(|(c, m)| ContainerStatus {
                            name: (*c).into(),
                            state: Some(ContainerState {
                                terminated: Some(ContainerStateTerminated {
                                    message: m.map(Into::into),
                                    finished_at: Some(Time(
                                        Timestamp::from_second(finished).unwrap(),
                                    )),
                                    ..ContainerStateTerminated::default()
                                }),
                                ..ContainerState::default()
                            }),
                            ..ContainerStatus::default()
                        })
                        .collect(),
                ),
                ..PodStatus::default()
            }),
        }
    }

    #[test]
    fn a_json_key_is_extracted_and_the_whole_message_is_trimmed() {
        let pods = [pod(
            "p",
            "Succeeded",
            1,
            &[("main", Some("{\"version\":\"1.2.3\",\"n\":4}\n"))],
        )];
        let read = read_outputs(
            "build",
            &[
                output("version", Some("version")),
                output("n", Some("n")),
                output("all", None),
            ],
            &pods,
        );
        assert_eq!(read.values["version"], "1.2.3");
        assert_eq!(read.values["n"], "4");
        assert_eq!(read.values["all"], "{\"version\":\"1.2.3\",\"n\":4}");
        assert!(read.missing.is_empty());
    }

    #[test]
    fn missing_key_bad_json_and_no_message_are_missing_with_why() {
        let declared = [output("v", Some("version"))];
        let no_key = read_outputs(
            "s",
            &declared,
            &[pod("p", "Succeeded", 1, &[("m", Some("{}"))])],
        );
        assert!(
            no_key.missing["v"].contains("no key \"version\""),
            "{no_key:?}"
        );
        let not_json = read_outputs(
            "s",
            &declared,
            &[pod("p", "Succeeded", 1, &[("m", Some("1.2.3"))])],
        );
        assert!(not_json.missing["v"].contains("not JSON"), "{not_json:?}");
        let none = read_outputs(
            "s",
            &[output("v", None)],
            &[pod("p", "Succeeded", 1, &[("m", None)])],
        );
        assert!(
            none.missing["v"].contains("no termination message"),
            "{none:?}"
        );
        let failed_only = read_outputs(
            "s",
            &declared,
            &[pod("p", "Failed", 1, &[("m", Some("{}"))])],
        );
        assert!(failed_only.missing["v"].contains("no succeeded pod"));
        let null = read_outputs(
            "s",
            &declared,
            &[pod(
                "p",
                "Succeeded",
                1,
                &[("m", Some("{\"version\":null}"))],
            )],
        );
        assert!(null.missing.contains_key("v"));
    }

    #[test]
    fn the_named_container_and_the_last_succeeded_pod_are_read() {
        let pods = [
            pod(
                "a",
                "Succeeded",
                5,
                &[("main", Some("old")), ("side", Some("s-old"))],
            ),
            pod(
                "b",
                "Succeeded",
                9,
                &[("main", Some("new")), ("side", Some("s-new"))],
            ),
            pod(
                "c",
                "Failed",
                20,
                &[("main", Some("failed")), ("side", Some("x"))],
            ),
        ];
        let mut side = output("side", None);
        side.container = Some("side".into());
        let read = read_outputs("s", &[output("main", None), side], &pods);
        assert_eq!(read.values["main"], "new");
        assert_eq!(read.values["side"], "s-new");
    }

    #[test]
    fn a_step_keeps_at_most_4_kib_of_values() {
        let big = "x".repeat(3000);
        let message = format!("{{\"a\":\"{big}\",\"b\":\"{big}\"}}");
        let pods = [pod("p", "Succeeded", 1, &[("m", Some(&message))])];
        let read = read_outputs(
            "s",
            &[output("a", Some("a")), output("b", Some("b"))],
            &pods,
        );
        assert_eq!(read.values["a"].len(), 3000);
        assert!(read.missing["b"].contains("more than 4096"), "{read:?}");
        assert!(read.value_bytes() <= MAX_OUTPUT_BYTES_PER_STEP);
    }

    #[test]
    fn the_run_bound_turns_values_that_do_not_fit_into_missing() {
        let full: Vec<StepOutputs> = (0..8)
            .map(|i| StepOutputs {
                step: format!("s{i}"),
                values: BTreeMap::from([("v".to_owned(), "x".repeat(4096))]),
                missing: BTreeMap::new(),
            })
            .collect();
        let next = StepOutputs {
            step: "t".into(),
            values: BTreeMap::from([("v".to_owned(), "y".into())]),
            missing: BTreeMap::new(),
        };
        let kept = within_run_bound(next.clone(), &full);
        assert!(kept.values.is_empty());
        assert!(kept.missing["v"].contains("exceed"));
        assert_eq!(within_run_bound(next.clone(), &full[..7]), next);
    }

    #[test]
    fn inputs_are_values_missing_or_unread() {
        let inputs = [OutputInput {
            env: "VERSION".into(),
            step: "build".into(),
            output: "version".into(),
        }];
        let read = StepOutputs {
            step: "build".into(),
            values: BTreeMap::from([("version".to_owned(), "1.2.3".to_owned())]),
            missing: BTreeMap::new(),
        };
        let ok = input_values(&inputs, |_| true, |_| Some(&read)).unwrap();
        assert_eq!(ok, vec![("VERSION".to_owned(), "1.2.3".to_owned())]);
        assert_eq!(
            input_values(&inputs, |_| true, |_| None),
            Err(InputProblem::Unread {
                step: "build".into()
            })
        );
        let failed = input_values(&inputs, |_| false, |_| Some(&read)).unwrap_err();
        assert!(matches!(failed, InputProblem::Missing(m) if m.contains("did not succeed")));
        let gone = unreadable_outputs("build", &[output("version", None)], "the Job was gone");
        let missing = input_values(&inputs, |_| true, |_| Some(&gone)).unwrap_err();
        assert!(matches!(missing, InputProblem::Missing(m) if m.contains("the Job was gone")));
    }
}
