//! ManagedJob (SPEC §2): groups of jobs -> steps `group/job`, Jobs `<managedjob>-<group>-<job>`.
//!
//! Ordering, decided here:
//! - Groups in list order. A group with `parallel: false` depends on every group listed before
//!   it (`succeeded`); `parallel: true` adds nothing. Explicit `dependencies` name groups.
//! - Inside a group the same rule holds for jobs against earlier jobs of that group (a group's
//!   own `parallel` flag does not make its jobs parallel). Explicit job `dependencies` name a job
//!   of the same group, `group/job`, or the full generated Job name (tried in that order).
//! - An explicit dependency on a target replaces the automatic one on the same target (so
//!   `{name: a, status: failed}` on an earlier sibling means "after a failed", not "never").
//! - The automatic job edges are kept linear: a sequential job depends on the nearest earlier
//!   sequential job whose automatic dependencies are all intact (its success implies that every
//!   job before it succeeded) and on every job after that one. This is equivalent to depending
//!   on all earlier jobs (a step only starts when its dependencies are met) and keeps a
//!   500-job sequential group at 500 edges instead of 125,000. A job with an explicit
//!   dependency on that barrier job gets the literal edges to every earlier job instead (the
//!   property test `linear_job_edges_equal_the_literal_rule` checks the equivalence).
//! - Job names and group names must be unique (`duplicate group name "g"`, `duplicate job name
//!   "j"`), and two jobs may not map to the same Job name (`a-b`/`c` and `a`/`b-c`).

use std::collections::{BTreeMap, HashMap, HashSet};

use jobsmith_api::labels::{GROUP, JOB};
use jobsmith_api::{GroupJob, JobTemplate, ManagedJob, ManagedJobGroup, Params};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};

use super::{BuildError, InvalidSpec, Plan, PlannedStep, planned, policies};
use crate::dag::{Dag, DepSpec, GroupSpec, Required, StepId, StepSpec};
use crate::naming::{child_name, container_name};
use crate::params::{apply_params, compiled_params, merge_levels, validate_params};
use crate::template::{self, ChildMeta};

/// The kind, as written in labels and owner references.
pub const KIND: &str = "ManagedJob";

/// The step key of a job: `group/job`.
pub fn step_key(group: &str, job: &str) -> String {
    format!("{group}/{job}")
}

/// The Job name of a job: `<managedjob>-<group>-<job>`.
pub fn job_name(managedjob: &str, group: &str, job: &str) -> String {
    child_name(&[managedjob, group, job])
}

/// Validates the spec and compiles its step graph.
pub fn plan(obj: &ManagedJob) -> Result<Plan, InvalidSpec> {
    let name = obj.metadata.name.as_deref().unwrap_or_default();
    let spec = &obj.spec;
    validate_all_params(obj)?;

    let mut group_index: HashMap<&str, usize> = HashMap::new();
    for (i, group) in spec.groups.iter().enumerate() {
        if group_index.insert(group.name.as_str(), i).is_some() {
            return Err(InvalidSpec::DuplicateGroup(group.name.clone()));
        }
    }

    let mut steps = Vec::new();
    let mut planned_steps = Vec::new();
    let mut jobs = JobIndex::default();
    for group in &spec.groups {
        for job in &group.jobs {
            let pair = (group.name.as_str(), job.name.as_str());
            if !jobs.by_group.insert(pair) {
                return Err(InvalidSpec::DuplicateJob(job.name.clone()));
            }
            if job.image.is_none() && job.template_ref.is_none() {
                return Err(InvalidSpec::NoJobSpec(format!(
                    "job \"{}\": needs an image or a templateRef",
                    step_key(&group.name, &job.name)
                )));
            }
            let key = step_key(&group.name, &job.name);
            let job_name = job_name(name, &group.name, &job.name);
            if let Some(first) = jobs.by_job_name.insert(job_name.clone(), key.clone()) {
                return Err(InvalidSpec::JobNameCollision {
                    first,
                    second: key,
                    job_name,
                });
            }
            planned_steps.push(PlannedStep {
                key,
                job_name,
                group: Some(group.name.clone()),
                template_ref: job.template_ref.clone(),
            });
        }
    }
    jobs.keys = planned_steps.iter().map(|s| s.key.clone()).collect();

    let mut groups = Vec::with_capacity(spec.groups.len());
    for (gi, group) in spec.groups.iter().enumerate() {
        let mut deps: BTreeMap<String, Required> = BTreeMap::new();
        if !group.parallel {
            for earlier in &spec.groups[..gi] {
                deps.insert(earlier.name.clone(), Required::Succeeded);
            }
        }
        for dep in &group.dependencies {
            if dep.name == group.name {
                return Err(InvalidSpec::SelfDependency(group.name.clone()));
            }
            if !group_index.contains_key(dep.name.as_str()) {
                return Err(InvalidSpec::UnknownDependency {
                    owner: format!("group \"{}\"", group.name),
                    name: dep.name.clone(),
                });
            }
            deps.insert(dep.name.clone(), dep.status.into());
        }
        groups.push(GroupSpec {
            key: group.name.clone(),
            deps: into_deps(deps),
        });
        job_steps(group, &jobs, &mut steps)?;
    }

    let dag = Dag::build(&steps, &groups)?;
    Ok(Plan {
        dag,
        steps: planned_steps,
        policies: policies(spec.failure_policy.into(), spec.suspend, spec.max_parallel),
    })
}

/// The steps of one group with their automatic and explicit dependencies.
fn job_steps(
    group: &ManagedJobGroup,
    jobs: &JobIndex<'_>,
    steps: &mut Vec<StepSpec>,
) -> Result<(), InvalidSpec> {
    // The nearest earlier sequential job whose automatic dependencies are intact: its success
    // implies the success of every job before it.
    let mut barrier: usize = 0;
    for (ji, job) in group.jobs.iter().enumerate() {
        let key = step_key(&group.name, &job.name);
        let mut explicit: BTreeMap<String, Required> = BTreeMap::new();
        for dep in &job.dependencies {
            let target = jobs.resolve(&group.name, &dep.name).ok_or_else(|| {
                InvalidSpec::UnknownDependency {
                    owner: format!("job \"{key}\""),
                    name: dep.name.clone(),
                }
            })?;
            if target == key {
                return Err(InvalidSpec::SelfDependency(key));
            }
            explicit.insert(target, dep.status.into());
        }
        let mut deps: BTreeMap<String, Required> = BTreeMap::new();
        if !job.parallel {
            // An explicit dependency on the barrier itself replaces the edge that stood for
            // every job before it: fall back to the literal rule for this job.
            let start = match group.jobs.get(barrier) {
                Some(b) if explicit.contains_key(&step_key(&group.name, &b.name)) => 0,
                _ => barrier,
            };
            for earlier in &group.jobs[start..ji] {
                deps.insert(step_key(&group.name, &earlier.name), Required::Succeeded);
            }
            // Overriding an automatic edge to a job before the barrier is fine (the barrier
            // covers the rest); overriding one at or after it breaks the barrier chain.
            let intact = !explicit.keys().any(|t| deps.contains_key(t));
            if intact {
                barrier = ji;
            }
        }
        deps.extend(explicit);
        steps.push(StepSpec {
            key,
            group: Some(group.name.clone()),
            deps: into_deps(deps),
        });
    }
    Ok(())
}

/// Every job of a ManagedJob, indexed once per compile so that resolving a job dependency is a
/// few hash lookups, not a scan of the spec (a workflow may have thousands of jobs, each with
/// dependencies).
#[derive(Default)]
struct JobIndex<'a> {
    /// (group name, job name) of every job.
    by_group: HashSet<(&'a str, &'a str)>,
    /// Every step key `group/job`.
    keys: HashSet<String>,
    /// Generated Job name -> step key.
    by_job_name: HashMap<String, String>,
}

impl JobIndex<'_> {
    /// A job dependency name written in `group` -> step key: a job of the same group,
    /// `group/job`, or a full Job name (tried in that order).
    fn resolve(&self, group: &str, name: &str) -> Option<String> {
        if self.by_group.contains(&(group, name)) {
            return Some(step_key(group, name));
        }
        if name.contains('/') && self.keys.contains(name) {
            return Some(name.to_owned());
        }
        self.by_job_name.get(name).cloned()
    }
}

fn into_deps(deps: BTreeMap<String, Required>) -> Vec<DepSpec> {
    deps.into_iter()
        .map(|(target, required)| DepSpec { target, required })
        .collect()
}

/// Checks `imagePullPolicy` (and any later per-level rule) on every level.
fn validate_all_params(obj: &ManagedJob) -> Result<(), InvalidSpec> {
    if let Some(params) = &obj.spec.params {
        validate_params(params, "spec.params")?;
    }
    for group in &obj.spec.groups {
        if let Some(params) = &group.params {
            validate_params(params, &format!("group \"{}\" params", group.name))?;
        }
        for job in &group.jobs {
            if let Some(params) = &job.params {
                let at = format!("job \"{}\" params", step_key(&group.name, &job.name));
                validate_params(params, &at)?;
            }
        }
    }
    Ok(())
}

/// The group and job of a step key, looked up in the spec.
pub fn find_job<'a>(obj: &'a ManagedJob, key: &str) -> Option<(&'a ManagedJobGroup, &'a GroupJob)> {
    let (group_name, job_name) = key.split_once('/')?;
    let group = obj.spec.groups.iter().find(|g| g.name == group_name)?;
    let job = group.jobs.iter().find(|j| j.name == job_name)?;
    Some((group, job))
}

/// The compiled params of the job with step key `key` (merged workflow -> group -> job, then
/// defaulted): the seed's `compiledParams`, for the kubectl plugin and status tooling.
pub fn job_params(obj: &ManagedJob, key: &str) -> Option<Params> {
    let (group, job) = find_job(obj, key)?;
    Some(compiled_params(
        obj.spec.params.as_ref(),
        group.params.as_ref(),
        job.params.as_ref(),
    ))
}

/// The complete Job of one step. `template` is the JobTemplate named by the step's
/// `template_ref` (ignored when the job has none).
pub fn build_job(
    obj: &ManagedJob,
    plan: &Plan,
    step: StepId,
    template: Option<&JobTemplate>,
) -> Result<Job, BuildError> {
    let planned = planned(plan, step)?;
    let (group, job) = find_job(obj, &planned.key).ok_or_else(|| {
        BuildError::Invalid(format!("job \"{}\" is not in the spec", planned.key))
    })?;
    let merged = merge_levels(
        obj.spec.params.as_ref(),
        group.params.as_ref(),
        job.params.as_ref(),
    );
    validate_params(&merged, &format!("job \"{}\" params", planned.key))
        .map_err(|e| BuildError::Invalid(e.to_string()))?;

    let used_template = job.template_ref.as_ref().and(template);
    let mut spec = match &job.template_ref {
        Some(name) => {
            let mut spec = template::resolve(Some(name), template, None)?;
            if let Some(first) = template::pod_spec_mut(&mut spec).containers.first_mut() {
                if let Some(image) = &job.image {
                    first.image = Some(image.clone());
                }
                if let Some(command) = &job.command {
                    first.command = Some(command.clone());
                }
                if let Some(args) = &job.args {
                    first.args = Some(args.clone());
                }
            }
            spec
        }
        None => image_job_spec(job),
    };
    apply_params(&mut spec.template, &merged);
    spec.backoff_limit = Some(obj.spec.retries);

    let meta = ChildMeta {
        kind: KIND,
        parent: &obj.metadata,
        job_name: &planned.job_name,
        step_labels: vec![(GROUP, group.name.clone()), (JOB, job.name.clone())],
        labels: merged.labels.as_ref(),
        annotations: merged.annotations.as_ref(),
        template: used_template,
    };
    let mut built = template::assemble_job(&meta, spec)?;
    let queue = obj
        .spec
        .queue
        .overridden_by(Some(&group.queue))
        .overridden_by(Some(&job.queue));
    crate::kueue::queue_job(&mut built, &queue);
    Ok(built)
}

/// The JobSpec of a job given by `image` (+ `command`, `args`): one container named after the
/// job; params and defaults are applied on top.
fn image_job_spec(job: &GroupJob) -> JobSpec {
    let container = Container {
        name: container_name(&job.name),
        image: job.image.clone(),
        command: job.command.clone(),
        args: job.args.clone(),
        ..Container::default()
    };
    JobSpec {
        template: PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                containers: vec![container],
                ..PodSpec::default()
            }),
        },
        ..JobSpec::default()
    }
}
