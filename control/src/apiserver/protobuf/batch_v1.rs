//! batch/v1 messages: Job and CronJob (its job template).

use k8s_pb::api::batch::v1 as batch;
use serde_json::{Map, Value};

use super::core_v1::pod_template_spec;
use super::meta_v1::{label_selector, object_meta};
use super::{Json, Result, reject};

pub(super) fn job(job: &batch::Job) -> Result<Map<String, Value>> {
    let mut j = Json::default();
    j.object("metadata", &job.metadata, object_meta)?;
    j.object("spec", &job.spec, job_spec)?;
    Ok(j.0)
}

fn job_spec(s: &batch::JobSpec) -> Result<Value> {
    reject(s.pod_failure_policy.is_some(), "JobSpec.podFailurePolicy")?;
    reject(s.success_policy.is_some(), "JobSpec.successPolicy")?;
    let mut j = Json::default();
    j.int_ptr("parallelism", s.parallelism);
    j.int_ptr("completions", s.completions);
    j.int_ptr("activeDeadlineSeconds", s.active_deadline_seconds);
    j.int_ptr("backoffLimit", s.backoff_limit);
    j.int_ptr("backoffLimitPerIndex", s.backoff_limit_per_index);
    j.int_ptr("maxFailedIndexes", s.max_failed_indexes);
    j.ptr("selector", &s.selector, label_selector)?;
    j.bool_ptr("manualSelector", s.manual_selector);
    j.object("template", &s.template, pod_template_spec)?;
    j.int_ptr("ttlSecondsAfterFinished", s.ttl_seconds_after_finished);
    j.str_ptr("completionMode", &s.completion_mode);
    j.bool_ptr("suspend", s.suspend);
    j.str_ptr("podReplacementPolicy", &s.pod_replacement_policy);
    j.str_ptr("managedBy", &s.managed_by);
    j.done()
}

pub(super) fn cron_job(c: &batch::CronJob) -> Result<Map<String, Value>> {
    let mut j = Json::default();
    j.object("metadata", &c.metadata, object_meta)?;
    j.object("spec", &c.spec, |s: &batch::CronJobSpec| {
        let mut j = Json::default();
        j.str_req("schedule", &s.schedule);
        j.str_ptr("timeZone", &s.time_zone);
        j.int_ptr("startingDeadlineSeconds", s.starting_deadline_seconds);
        j.str("concurrencyPolicy", &s.concurrency_policy);
        j.bool_ptr("suspend", s.suspend);
        j.object(
            "jobTemplate",
            &s.job_template,
            |t: &batch::JobTemplateSpec| {
                let mut j = Json::default();
                j.object("metadata", &t.metadata, object_meta)?;
                j.object("spec", &t.spec, job_spec)?;
                j.done()
            },
        )?;
        j.int_ptr(
            "successfulJobsHistoryLimit",
            s.successful_jobs_history_limit,
        );
        j.int_ptr("failedJobsHistoryLimit", s.failed_jobs_history_limit);
        j.done()
    })?;
    Ok(j.0)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{decoded, fixture, meta_named, s};
    use super::*;
    use k8s_pb::api::core::v1 as core;
    use serde_json::json;

    #[test]
    fn job_pointer_zero_fields_are_kept() {
        let job = batch::Job {
            metadata: meta_named("j"),
            spec: Some(batch::JobSpec {
                backoff_limit: Some(0),
                completions: Some(3),
                template: Some(core::PodTemplateSpec {
                    metadata: None,
                    spec: Some(core::PodSpec {
                        containers: vec![core::Container {
                            name: s("j"),
                            image: s("j.wasm"),
                            ..Default::default()
                        }],
                        restart_policy: s("Never"),
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }),
            status: None,
        };
        assert_eq!(
            decoded("batch/v1", "Job", &job)["spec"],
            json!({
                "completions": 3,
                "backoffLimit": 0,
                "template": {
                    "metadata": {"creationTimestamp": null},
                    "spec": {
                        "containers": [{"name": "j", "image": "j.wasm", "resources": {}}],
                        "restartPolicy": "Never"
                    }
                }
            })
        );
    }

    #[test]
    fn kubectl_create_job_and_cronjob() {
        // kubectl create job j --image=x.wasm -- run --flag
        assert_eq!(
            fixture(include_bytes!("testdata/job.bin")),
            json!({
                "kind": "Job", "apiVersion": "batch/v1",
                "metadata": {"name": "j", "creationTimestamp": null},
                "spec": {"template": {
                    "metadata": {"creationTimestamp": null},
                    "spec": {
                        "containers": [{
                            "name": "j", "image": "x.wasm", "command": ["run", "--flag"], "resources": {}
                        }],
                        "restartPolicy": "Never"
                    }
                }}
            })
        );
        // kubectl create cronjob cj --image=x.wasm --schedule="*/5 * * * *" -- run
        assert_eq!(
            fixture(include_bytes!("testdata/cronjob.bin")),
            json!({
                "kind": "CronJob", "apiVersion": "batch/v1",
                "metadata": {"name": "cj", "creationTimestamp": null},
                "spec": {
                    "schedule": "*/5 * * * *",
                    "jobTemplate": {
                        "metadata": {"name": "cj", "creationTimestamp": null},
                        "spec": {"template": {
                            "metadata": {"creationTimestamp": null},
                            "spec": {
                                "containers": [{
                                    "name": "cj", "image": "x.wasm", "command": ["run"], "resources": {}
                                }],
                                "restartPolicy": "OnFailure"
                            }
                        }}
                    }
                }
            })
        );
    }
}
