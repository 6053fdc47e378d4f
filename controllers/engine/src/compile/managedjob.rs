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
//! - Exit steps (`spec.onExit`, `crate::compile::exit`) are the group `onExit`, planned after every
//!   other group, with the ordering rules of a group's jobs; they are marked as exit steps, so
//!   the scheduler starts them once everything else is terminal. Their dependencies resolve
//!   among exit jobs only (a normal job's name is `exit steps may depend only on other exit
//!   steps`), and no normal job can depend on them (`unknown dependency`). Their Job names are
//!   `<managedjob>-onexit-<job>`; a group named `onexit` whose job would get the same Job name
//!   is reported as a Job name collision.

use std::collections::{BTreeMap, HashMap, HashSet};

use jobsmith_api::labels::{GROUP, JOB};
use jobsmith_api::{
    GroupJob, JobRestartPolicy, JobTemplate, ManagedJob, ManagedJobGroup, ManagedJobSpec, Params,
    RetryPolicy,
};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};

use super::{BuildError, InvalidSpec, Plan, PlannedStep, planned, policies};
use crate::build::naming::{child_name, container_name};
use crate::build::params::{apply_params, compiled_params, merge_levels, validate_params};
use crate::build::retry_policy::{self, RetryPolicyError};
use crate::build::template::{self, ChildMeta};
use crate::compile::exit;
use crate::compile::outputs::{self, OutputInput};
use crate::schedule::dag::{Dag, DepSpec, GroupSpec, Required, StepId, StepSpec};

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

/// The Job name of an exit job: `<managedjob>-onexit-<job>`.
pub fn exit_job_name(managedjob: &str, job: &str) -> String {
    child_name(&[managedjob, exit::JOB_NAME_PART, job])
}

/// `spec.onExit` as a group (`onExit`, sequential like any group, no dependencies of its own).
fn exit_group(obj: &ManagedJob) -> Option<ManagedJobGroup> {
    (!obj.spec.on_exit.is_empty()).then(|| ManagedJobGroup {
        name: exit::GROUP.to_owned(),
        parallel: false,
        params: None,
        dependencies: Vec::new(),
        retry_policy: None,
        queue: Default::default(),
        jobs: obj.spec.on_exit.clone(),
    })
}

/// Validates the spec and compiles its step graph.
pub fn plan(obj: &ManagedJob) -> Result<Plan, InvalidSpec> {
    let name = obj.metadata.name.as_deref().unwrap_or_default();
    let spec = &obj.spec;
    validate_all_params(obj)?;
    validate_retry_policies(obj)?;

    let group_index = group_index(spec)?;

    let mut steps = Vec::new();
    let mut planned_steps = Vec::new();
    let mut jobs = JobIndex::default();
    let mut job_names: HashMap<String, String> = HashMap::new();
    for group in &spec.groups {
        for job in &group.jobs {
            let planned = planned_job(name, group, job, &mut jobs, &mut job_names)?;
            planned_steps.push(planned);
        }
    }
    jobs.keys = planned_steps.iter().map(|s| s.key.clone()).collect();
    let mut next = planned_steps.iter_mut();
    for group in &spec.groups {
        for (job, planned) in group.jobs.iter().zip(next.by_ref()) {
            planned.inputs = job_inputs(obj, group, job, &jobs)?;
        }
    }
    let on_exit = exit_group(obj);
    let mut exit_jobs = JobIndex::default();
    if let Some(group) = &on_exit {
        for job in &group.jobs {
            let mut planned = planned_job(name, group, job, &mut exit_jobs, &mut job_names)?;
            planned.exit = true;
            planned_steps.push(planned);
        }
        exit_jobs.keys = group
            .jobs
            .iter()
            .map(|j| step_key(exit::GROUP, &j.name))
            .collect();
    }

    let mut groups = Vec::with_capacity(spec.groups.len());
    for (gi, group) in spec.groups.iter().enumerate() {
        groups.push(group_spec(&spec.groups[..gi], group, &group_index)?);
        job_steps(group, &jobs, &mut steps)?;
    }

    if let Some(group) = &on_exit {
        check_exit_dependencies(group, &exit_jobs, &jobs)?;
        groups.push(GroupSpec {
            key: group.name.clone(),
            deps: Vec::new(),
        });
        job_steps(group, &exit_jobs, &mut steps)?;
    }

    let dag = Dag::build(&steps, &groups)?;
    outputs::check_plan(&dag, &planned_steps)?;
    Ok(Plan::new(
        dag,
        planned_steps,
        policies(spec.failure_policy.into(), spec.suspend, spec.max_parallel),
    ))
}

/// Each group's position by name; a reserved or repeated group name is an error.
fn group_index(spec: &ManagedJobSpec) -> Result<HashMap<&str, usize>, InvalidSpec> {
    let mut group_index: HashMap<&str, usize> = HashMap::new();
    for (i, group) in spec.groups.iter().enumerate() {
        if group.name == exit::GROUP {
            return Err(InvalidSpec::ReservedName(format!(
                "group \"{}\": the name is reserved for spec.onExit",
                exit::GROUP
            )));
        }
        if group_index.insert(group.name.as_str(), i).is_some() {
            return Err(InvalidSpec::DuplicateGroup(group.name.clone()));
        }
    }
    Ok(group_index)
}

/// A group's node in the step graph: a sequential group (`parallel: false`) needs every
/// `earlier` group to succeed, then its declared dependencies (checked against `group_index`).
fn group_spec(
    earlier: &[ManagedJobGroup],
    group: &ManagedJobGroup,
    group_index: &HashMap<&str, usize>,
) -> Result<GroupSpec, InvalidSpec> {
    let mut deps: BTreeMap<String, Required> = BTreeMap::new();
    if !group.parallel {
        for earlier in earlier {
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
    Ok(GroupSpec {
        key: group.name.clone(),
        deps: into_deps(deps),
    })
}

/// The planned step of one job, checked: unique in its group, something to run, a Job name no
/// other job has. `jobs` indexes the jobs of its class (normal or exit), `job_names` every Job
/// name of the workflow.
fn planned_job<'a>(
    managedjob: &str,
    group: &'a ManagedJobGroup,
    job: &'a GroupJob,
    jobs: &mut JobIndex<'a>,
    job_names: &mut HashMap<String, String>,
) -> Result<PlannedStep, InvalidSpec> {
    if !jobs
        .by_group
        .insert((group.name.as_str(), job.name.as_str()))
    {
        return Err(InvalidSpec::DuplicateJob(job.name.clone()));
    }
    let key = step_key(&group.name, &job.name);
    if job.image.is_none() && job.template_ref.is_none() {
        return Err(InvalidSpec::NoJobSpec(format!(
            "job \"{key}\": needs an image or a templateRef"
        )));
    }
    let job_name = if group.name == exit::GROUP {
        exit_job_name(managedjob, &job.name)
    } else {
        job_name(managedjob, &group.name, &job.name)
    };
    if let Some(first) = job_names.insert(job_name.clone(), key.clone()) {
        return Err(InvalidSpec::JobNameCollision {
            first,
            second: key,
            job_name,
        });
    }
    jobs.by_job_name.insert(job_name.clone(), key.clone());
    Ok(PlannedStep {
        key,
        job_name,
        group: Some(group.name.clone()),
        template_ref: job.template_ref.clone(),
        outputs: job.outputs.clone(),
        inputs: Vec::new(),
        exit: false,
    })
}

/// An exit job's dependency that names a job of the workflow instead of another exit job gets
/// a message saying so (any other unknown name is reported by [`job_steps`]).
fn check_exit_dependencies(
    group: &ManagedJobGroup,
    exit_jobs: &JobIndex<'_>,
    jobs: &JobIndex<'_>,
) -> Result<(), InvalidSpec> {
    for job in &group.jobs {
        for dep in &job.dependencies {
            let normal = || {
                jobs.keys.contains(&dep.name)
                    || jobs.by_job_name.contains_key(&dep.name)
                    || jobs.by_group.iter().any(|(_, j)| *j == dep.name)
            };
            if exit_jobs.resolve(&group.name, &dep.name).is_none() && normal() {
                return Err(InvalidSpec::ExitDependency {
                    owner: format!("job \"{}\"", step_key(&group.name, &job.name)),
                    name: dep.name.clone(),
                });
            }
        }
    }
    Ok(())
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

/// The env variables of a job that take another step's output: its params' `env` merged by
/// name over the three levels (the most specific wins), the producer resolved as a job
/// dependency is (a job of the same group, `group/job`, or the full Job name).
fn job_inputs(
    obj: &ManagedJob,
    group: &ManagedJobGroup,
    job: &GroupJob,
    jobs: &JobIndex<'_>,
) -> Result<Vec<OutputInput>, InvalidSpec> {
    let levels = [
        job.params.as_ref(),
        group.params.as_ref(),
        obj.spec.params.as_ref(),
    ];
    let mut seen = HashSet::new();
    let mut inputs = Vec::new();
    for var in levels
        .into_iter()
        .flatten()
        .flat_map(|p| p.env.iter().flatten())
    {
        if !seen.insert(var.name.as_str()) {
            continue;
        }
        let Some(source) = var.step_output() else {
            continue;
        };
        let step = jobs.resolve(&group.name, &source.step).ok_or_else(|| {
            InvalidSpec::Outputs(format!(
                "step \"{}\": env {}: unknown step \"{}\"",
                step_key(&group.name, &job.name),
                var.name,
                source.step
            ))
        })?;
        inputs.push(OutputInput {
            env: var.name.clone(),
            step,
            output: source.name.clone(),
        });
    }
    Ok(inputs)
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
    for job in &obj.spec.on_exit {
        if let Some(params) = &job.params {
            let at = format!("job \"{}\" params", step_key(exit::GROUP, &job.name));
            validate_params(params, &at)?;
        }
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

/// Checks the `retryPolicy` of every level and, per job, the merged one: contradictions
/// between levels (a code the group retries and the job ignores) and rules on a job whose
/// params ask for `restartPolicy: OnFailure`.
fn validate_retry_policies(obj: &ManagedJob) -> Result<(), InvalidSpec> {
    let spec = &obj.spec;
    if let Some(policy) = &spec.retry_policy {
        retry_policy::validate(policy, "spec.retryPolicy")?;
    }
    for group in &spec.groups {
        if let Some(policy) = &group.retry_policy {
            retry_policy::validate(policy, &format!("group \"{}\" retryPolicy", group.name))?;
        }
        for job in &group.jobs {
            let at = format!("job \"{}\"", step_key(&group.name, &job.name));
            if let Some(policy) = &job.retry_policy {
                retry_policy::validate(policy, &format!("{at} retryPolicy"))?;
            }
            let merged = job_retry_policy(obj, Some(group), job);
            retry_policy::validate(&merged, &at)?;
            let restart = [&job.params, &group.params, &spec.params]
                .into_iter()
                .find_map(|p| p.as_ref()?.restart_policy);
            if merged.has_rules() && restart == Some(JobRestartPolicy::OnFailure) {
                return Err(RetryPolicyError::NeedsRestartNever {
                    at,
                    set_by: "params",
                    policy: JobRestartPolicy::OnFailure.as_str().to_owned(),
                }
                .into());
            }
        }
    }
    Ok(())
}

/// The retry policy of one job: job, group and workflow levels merged field by field, with
/// `spec.retries` as the limit when no level sets one.
pub fn job_retry_policy(
    obj: &ManagedJob,
    group: Option<&ManagedJobGroup>,
    job: &GroupJob,
) -> RetryPolicy {
    let mut merged = retry_policy::merge([
        job.retry_policy.as_ref(),
        group.and_then(|g| g.retry_policy.as_ref()),
        obj.spec.retry_policy.as_ref(),
    ]);
    merged.limit.get_or_insert(obj.spec.retries);
    merged
}

/// The group and job of a step key, looked up in the spec (exit jobs are not in a group of
/// the spec: [`find_step`]).
pub fn find_job<'a>(obj: &'a ManagedJob, key: &str) -> Option<(&'a ManagedJobGroup, &'a GroupJob)> {
    let (group_name, job_name) = key.split_once('/')?;
    let group = obj.spec.groups.iter().find(|g| g.name == group_name)?;
    let job = group.jobs.iter().find(|j| j.name == job_name)?;
    Some((group, job))
}

/// The job of a step key, exit jobs (`onExit/<job>`) included, with its group's params (none
/// for an exit job) and its group's name.
pub fn find_step<'a>(
    obj: &'a ManagedJob,
    key: &str,
) -> Option<(Option<&'a ManagedJobGroup>, &'a str, &'a GroupJob)> {
    if let Some(job_name) = key
        .strip_prefix(exit::GROUP)
        .and_then(|rest| rest.strip_prefix('/'))
    {
        let job = obj.spec.on_exit.iter().find(|j| j.name == job_name)?;
        return Some((None, exit::GROUP, job));
    }
    let (group, job) = find_job(obj, key)?;
    Some((Some(group), group.name.as_str(), job))
}

/// The compiled params of the job with step key `key` (merged workflow -> group -> job, then
/// defaulted): the seed's `compiledParams`, for the kubectl plugin and status tooling.
pub fn job_params(obj: &ManagedJob, key: &str) -> Option<Params> {
    let (group, _, job) = find_step(obj, key)?;
    let group_params = group.and_then(|g| g.params.as_ref());
    Some(compiled_params(
        obj.spec.params.as_ref(),
        group_params,
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
    let (group, group_name, job) = find_step(obj, &planned.key).ok_or_else(|| {
        BuildError::Invalid(format!("job \"{}\" is not in the spec", planned.key))
    })?;
    let group_params = group.and_then(|g| g.params.as_ref());
    let merged = merge_levels(obj.spec.params.as_ref(), group_params, job.params.as_ref());
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
    apply_retry_policy(&mut spec, &job_retry_policy(obj, group, job), &planned.key)?;

    let meta = ChildMeta {
        kind: KIND,
        parent: &obj.metadata,
        job_name: &planned.job_name,
        step_labels: vec![(GROUP, group_name.to_owned()), (JOB, job.name.clone())],
        labels: merged.labels.as_ref(),
        annotations: merged.annotations.as_ref(),
        template: used_template,
    };
    let mut built = template::assemble_job(&meta, spec)?;
    let queue = obj
        .spec
        .queue
        .overridden_by(group.map(|g| &g.queue))
        .overridden_by(Some(&job.queue));
    crate::build::kueue::queue_job(&mut built, &queue);
    Ok(built)
}

/// The job's retry policy on its JobSpec: the limit always (as `retries` always was), the
/// rules when some level sets them (else a JobTemplate's own `podFailurePolicy` stays). Rules
/// make the pods `restartPolicy: Never` (params that ask for `OnFailure` were refused by
/// [`plan`]).
fn apply_retry_policy(
    spec: &mut JobSpec,
    policy: &RetryPolicy,
    key: &str,
) -> Result<(), BuildError> {
    spec.backoff_limit = policy.limit;
    if policy.sets_rules() {
        spec.pod_failure_policy = retry_policy::pod_failure_policy(policy);
    }
    if policy.has_rules() {
        template::force_restart_policy(&mut spec.template, JobRestartPolicy::Never.as_str());
    }
    retry_policy::check_restart_policy(spec, &format!("job \"{key}\""))?;
    Ok(())
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
