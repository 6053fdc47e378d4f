//! JobTemplate (SPEC §5): says whether a template is usable. It owns no Job; the kinds that use
//! templates resolve them from the shared JobTemplate cache (`templates.rs`) and are
//! reconciled when one changes (`run::template_trigger`).
//!
//! Status: `Ready=True` reason `TemplateValid`, or `Ready=False` reason `TemplateInvalid` with the
//! problem as message; `Stalled` mirrors an invalid template (kstatus: a permanent problem until
//! the spec changes), `Reconciling=False` (one reconcile decides); `observedGeneration`. Validity
//! is exactly what the users of a template check when they build a Job from it
//! (`jobsmith_engine::build::template::template_job_spec`: the effective JobSpec — `spec.jobTemplate`
//! when present, else the inline `spec` — has containers, each with a name and an image, names
//! unique), so `Ready=True` means a Job can be built from it. A template whose `overridable` (or
//! anything else) does not deserialize never reaches `reconcile`: the driver reports it
//! (`InvalidSpec` Event) and its users report `TemplateInvalid`.
//!
//! Events: one Warning `InvalidSpec` when the template becomes invalid (or its problem changes),
//! derived from the previous status so that a restart does not repeat it.

use std::sync::Arc;

use jobsmith_api::{JobTemplate, JobTemplateStatus, condition_types as types, reasons};
use jobsmith_engine::status::conditions::{ConditionStatus, DesiredCondition, set_conditions};
use kube::{Resource, ResourceExt, runtime::controller::Action};

use crate::{
    cli::ControllerKind,
    context::Context,
    controller::{ErrorCategory, Reconciled, Reconciler},
    status::{self, StatusError},
    telemetry::events::EventKind,
};

/// Errors of one JobTemplate reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("serializing the status: {0}")]
    Serialize(#[source] serde_json::Error),
    #[error(transparent)]
    Status(#[from] StatusError),
}

impl ErrorCategory for Error {
    fn category(&self) -> &'static str {
        match self {
            Error::Serialize(_) => "status_shape",
            Error::Status(e) => e.category(),
        }
    }
}

/// Why the template cannot be used, if it cannot.
pub fn problem(template: &JobTemplate) -> Option<String> {
    match jobsmith_engine::build::template::template_job_spec(template) {
        Ok(_) => None,
        Err(jobsmith_engine::compile::BuildError::TemplateInvalid { message, .. }) => Some(message),
        Err(other) => Some(other.to_string()),
    }
}

/// The desired status from the template and its previous status (`now` only stamps a condition
/// whose status flips).
pub fn desired_status(
    template: &JobTemplate,
    now: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) -> JobTemplateStatus {
    use ConditionStatus::{False, True};
    let generation = template.metadata.generation;
    let desired = match problem(template) {
        None => {
            let message = "the template is valid and usable";
            vec![
                DesiredCondition::new(types::READY, True, reasons::TEMPLATE_VALID, message),
                DesiredCondition::new(types::RECONCILING, False, reasons::TEMPLATE_VALID, message),
                DesiredCondition::new(types::STALLED, False, reasons::TEMPLATE_VALID, message),
            ]
        }
        Some(problem) => vec![
            DesiredCondition::new(types::READY, False, reasons::TEMPLATE_INVALID, &problem),
            DesiredCondition::new(
                types::RECONCILING,
                False,
                reasons::TEMPLATE_INVALID,
                &problem,
            ),
            DesiredCondition::new(types::STALLED, True, reasons::TEMPLATE_INVALID, &problem),
        ],
    };
    let previous = template
        .status
        .as_ref()
        .map_or(&[][..], |s| s.conditions.as_slice());
    JobTemplateStatus {
        conditions: set_conditions(previous, &desired, now, generation),
        observed_generation: generation,
    }
}

/// The `(reason, message)` of the `Ready` condition when it is `False`.
fn not_ready(status: Option<&JobTemplateStatus>) -> Option<(&str, &str)> {
    status?
        .conditions
        .iter()
        .find(|c| c.type_ == types::READY && c.status == "False")
        .map(|c| (c.reason.as_str(), c.message.as_str()))
}

use crate::status::now;

/// The JobTemplate controller.
pub struct JobTemplateController;

impl Reconciler for JobTemplateController {
    type Kind = JobTemplate;
    type Error = Error;
    const CONTROLLER: ControllerKind = ControllerKind::Jobtemplate;
    const OWNS_JOBS: bool = false;

    fn invalid_object_status(
        message: &str,
        generation: Option<i64>,
        now: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
    ) -> Option<serde_json::Value> {
        use ConditionStatus::{False, True};
        let desired = [
            DesiredCondition::new(types::READY, False, reasons::INVALID_SPEC, message),
            DesiredCondition::new(types::RECONCILING, False, reasons::INVALID_SPEC, message),
            DesiredCondition::new(types::STALLED, True, reasons::INVALID_SPEC, message),
        ];
        serde_json::to_value(JobTemplateStatus {
            conditions: set_conditions(&[], &desired, now, generation),
            observed_generation: generation,
        })
        .ok()
    }

    async fn reconcile(obj: Reconciled<JobTemplate>, ctx: Arc<Context>) -> Result<Action, Error> {
        let Some(obj) = obj.get() else {
            return Ok(Action::await_change());
        };
        if obj.meta().deletion_timestamp.is_some() {
            return Ok(Action::await_change());
        }
        let desired = desired_status(obj, &now());
        let was = not_ready(obj.status.as_ref()).map(|(r, m)| (r.to_owned(), m.to_owned()));
        let is = not_ready(Some(&desired)).map(|(r, m)| (r.to_owned(), m.to_owned()));
        let current = obj
            .status
            .as_ref()
            .map(serde_json::to_value)
            .transpose()
            .map_err(Error::Serialize)?
            .unwrap_or(serde_json::Value::Null);
        let value = serde_json::to_value(&desired).map_err(Error::Serialize)?;
        status::write_status(&ctx, obj, &current, &value).await?;
        if let Some((_, message)) = &is
            && was != is
        {
            tracing::info!(template = %obj.name_any(), %message, "JobTemplate is not usable");
            ctx.events
                .publish(
                    obj,
                    EventKind::Invalid,
                    reasons::INVALID_SPEC,
                    message.clone(),
                )
                .await;
        }
        // Validity depends on the spec only: nothing to do until it changes.
        Ok(Action::await_change())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test may panic
mod tests {
    use super::*;

    fn template(spec: serde_json::Value) -> JobTemplate {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "jobsmith.dev/v1alpha1", "kind": "JobTemplate",
            "metadata": {"name": "t", "namespace": "ns", "generation": 3},
            "spec": spec,
        }))
        .unwrap()
    }

    fn at(s: i64) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::from_second(s).unwrap(),
        )
    }

    fn ready(status: &JobTemplateStatus) -> (&str, &str) {
        let c = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        (c.status.as_str(), c.reason.as_str())
    }

    #[test]
    fn both_shapes_and_jobtemplate_wins() {
        let inline = template(serde_json::json!({
            "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}
        }));
        let status = desired_status(&inline, &at(1));
        assert_eq!(ready(&status), ("True", "TemplateValid"));
        assert_eq!(status.observed_generation, Some(3));

        let wrapped = template(serde_json::json!({
            "jobTemplate": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}
        }));
        assert_eq!(
            ready(&desired_status(&wrapped, &at(1))),
            ("True", "TemplateValid")
        );

        // `jobTemplate` wins: a valid inline spec does not save an empty jobTemplate.
        let both = template(serde_json::json!({
            "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}},
            "jobTemplate": {"template": {"spec": {"containers": []}}}
        }));
        let status = desired_status(&both, &at(1));
        assert_eq!(ready(&status), ("False", "TemplateInvalid"));
        let stalled = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Stalled")
            .unwrap();
        assert_eq!(stalled.status, "True");
        assert!(
            stalled.message.contains("containers is empty"),
            "{}",
            stalled.message
        );
    }

    #[test]
    fn containers_need_a_name_and_an_image() {
        let no_image = template(serde_json::json!({
            "template": {"spec": {"containers": [{"name": "c"}]}}
        }));
        let status = desired_status(&no_image, &at(1));
        assert_eq!(ready(&status), ("False", "TemplateInvalid"));
        assert!(not_ready(Some(&status)).unwrap().1.contains("has no image"));
    }

    #[test]
    fn an_unchanged_template_keeps_its_transition_time() {
        let mut t = template(serde_json::json!({
            "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}
        }));
        let first = desired_status(&t, &at(1));
        t.status = Some(first.clone());
        let second = desired_status(&t, &at(99));
        assert_eq!(first, second);
    }

    #[test]
    fn overridable_defaults_to_all_three_and_rejects_unknown_fields() {
        let t = template(serde_json::json!({
            "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}
        }));
        assert_eq!(t.spec.overridable.len(), 3);
        let bad: Result<JobTemplate, _> = serde_json::from_value(serde_json::json!({
            "apiVersion": "jobsmith.dev/v1alpha1", "kind": "JobTemplate",
            "metadata": {"name": "t"},
            "spec": {"overridable": ["image"], "template": {}}
        }));
        assert!(
            bad.is_err(),
            "an unknown overridable field does not deserialize"
        );
    }
}
