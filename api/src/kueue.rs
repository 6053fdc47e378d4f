//! Kueue admission of a run's Jobs (docs/integrations.md "Kueue"): `queueName` and
//! `priorityClassName`, set on the run and overridable per level (ManagedJob group and job,
//! JobFlow flow). A step whose resolved `queueName` is set gets a Job created suspended with
//! Kueue's labels; Kueue admits it by unsuspending it. Runtime state stays in `status`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Job label naming the Kueue LocalQueue (of the Job's namespace) that admits the Job.
pub const QUEUE_NAME_LABEL: &str = "kueue.x-k8s.io/queue-name";
/// Job label naming the Kueue WorkloadPriorityClass of the Job's Workload.
pub const PRIORITY_CLASS_LABEL: &str = "kueue.x-k8s.io/priority-class";

/// Where a level's Jobs are queued. Each field is resolved on its own: the most specific level
/// that sets it wins (run, then group, then job for a ManagedJob; run, then flow for a JobFlow).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Queueing {
    /// Kueue LocalQueue (in the run's namespace) that admits the Jobs: they are created
    /// suspended with the label `kueue.x-k8s.io/queue-name`, and start when Kueue admits them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), pattern("^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub queue_name: Option<String>,
    /// Kueue WorkloadPriorityClass of the queued Jobs (label `kueue.x-k8s.io/priority-class`).
    /// Only used with a `queueName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), pattern("^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub priority_class_name: Option<String>,
}

impl Queueing {
    /// `self` overridden field by field by the more specific `over` (when given).
    pub fn overridden_by(&self, over: Option<&Queueing>) -> Queueing {
        let Some(over) = over else {
            return self.clone();
        };
        Queueing {
            queue_name: over.queue_name.clone().or_else(|| self.queue_name.clone()),
            priority_class_name: over
                .priority_class_name
                .clone()
                .or_else(|| self.priority_class_name.clone()),
        }
    }

    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        self.queue_name.is_none() && self.priority_class_name.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(queue: Option<&str>, priority: Option<&str>) -> Queueing {
        Queueing {
            queue_name: queue.map(str::to_owned),
            priority_class_name: priority.map(str::to_owned),
        }
    }

    #[test]
    fn the_most_specific_level_wins_field_by_field() {
        let run = q(Some("team"), Some("low"));
        assert_eq!(run.overridden_by(None), run);
        assert_eq!(run.overridden_by(Some(&q(None, None))), run);
        assert_eq!(
            run.overridden_by(Some(&q(Some("gpu"), None))),
            q(Some("gpu"), Some("low"))
        );
        assert_eq!(
            q(None, None).overridden_by(Some(&q(None, Some("high")))),
            q(None, Some("high"))
        );
        assert!(q(None, None).is_empty());
    }
}
