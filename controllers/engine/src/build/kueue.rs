//! Kueue admission (docs/integrations.md "Kueue"): how a step's Job is handed to a Kueue
//! LocalQueue, and how a queued Job is recognised.
//!
//! Decided here:
//! - A step is queued when its resolved `queueName` is set, or when its Job already carries the
//!   label `kueue.x-k8s.io/queue-name` (from the parent's labels or params): Kueue manages every
//!   Job with that label, and one created unsuspended would get a pod that Kueue then deletes.
//! - A queued step's Job is created with `spec.suspend: true` and the queue label on the Job
//!   (not on its pods: Kueue's Job integration reads the Job; a pod with the label would be
//!   taken for a plain pod of Kueue's pod integration). `priorityClassName` becomes the label
//!   `kueue.x-k8s.io/priority-class`, only on a queued Job.
//! - Jobsmith never unsuspends or edits the Job afterwards: Kueue admits it by setting
//!   `suspend: false` (and may inject node selectors and tolerations of its flavor).
//! - A Job is **queued** while it is suspended, unfinished and carries the queue label: not yet
//!   admitted, or evicted and waiting for a new admission.

use std::collections::BTreeMap;

use jobsmith_api::Queueing;
use jobsmith_api::kueue::{PRIORITY_CLASS_LABEL, QUEUE_NAME_LABEL};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Hands the Job to Kueue when `queue` (or an existing label) names a LocalQueue: created
/// suspended, with the queue label and the priority class label. Leaves other Jobs untouched.
pub fn queue_job(job: &mut Job, queue: &Queueing) {
    if queue.queue_name.is_none() && queue_name(&job.metadata).is_none() {
        return;
    }
    let labels = job.metadata.labels.get_or_insert_with(BTreeMap::new);
    if let Some(name) = &queue.queue_name {
        labels.insert(QUEUE_NAME_LABEL.to_owned(), name.clone());
    }
    if let Some(priority) = &queue.priority_class_name {
        labels.insert(PRIORITY_CLASS_LABEL.to_owned(), priority.clone());
    }
    job.spec.get_or_insert_with(Default::default).suspend = Some(true);
}

/// The LocalQueue named by the Job's queue label.
pub fn queue_name(meta: &ObjectMeta) -> Option<&str> {
    meta.labels
        .as_ref()?
        .get(QUEUE_NAME_LABEL)
        .map(String::as_str)
        .filter(|name| !name.is_empty())
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::JobSpec;

    fn queueing(queue: Option<&str>, priority: Option<&str>) -> Queueing {
        Queueing {
            queue_name: queue.map(str::to_owned),
            priority_class_name: priority.map(str::to_owned),
        }
    }

    fn label<'a>(job: &'a Job, key: &str) -> Option<&'a str> {
        job.metadata.labels.as_ref()?.get(key).map(String::as_str)
    }

    #[test]
    fn a_queued_job_is_created_suspended_with_the_labels() {
        let mut job = Job {
            spec: Some(JobSpec::default()),
            ..Job::default()
        };
        queue_job(&mut job, &queueing(Some("team-a"), Some("high")));
        assert_eq!(job.spec.as_ref().unwrap().suspend, Some(true));
        assert_eq!(label(&job, QUEUE_NAME_LABEL), Some("team-a"));
        assert_eq!(label(&job, PRIORITY_CLASS_LABEL), Some("high"));
        assert_eq!(queue_name(&job.metadata), Some("team-a"));
        // Nothing on the pod template.
        assert!(job.spec.unwrap().template.metadata.is_none());
    }

    #[test]
    fn without_a_queue_nothing_changes() {
        let mut job = Job::default();
        queue_job(&mut job, &queueing(None, Some("high")));
        assert_eq!(job, Job::default());
        assert_eq!(queue_name(&job.metadata), None);
    }

    #[test]
    fn a_queue_label_from_params_also_makes_the_job_queued() {
        let mut job = Job::default();
        job.metadata.labels = Some(BTreeMap::from([(
            QUEUE_NAME_LABEL.to_owned(),
            "from-params".to_owned(),
        )]));
        queue_job(&mut job, &Queueing::default());
        assert_eq!(job.spec.unwrap().suspend, Some(true));
        // The spec's queueName wins over a label.
        let mut job = Job::default();
        job.metadata.labels = Some(BTreeMap::from([(
            QUEUE_NAME_LABEL.to_owned(),
            "from-params".to_owned(),
        )]));
        queue_job(&mut job, &queueing(Some("spec"), None));
        assert_eq!(queue_name(&job.metadata), Some("spec"));
    }
}
