//! Printers of batch/v1 kinds: Job (status, completions, duration) and CronJob.
//!
//! Invariant: each `*_cells` returns one cell per column of its `*_COLUMNS`, in order.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{
    AGE, CONTAINERS, Column, IMAGES, NAME, age, col, container_cells, default_str, flag, format_label_selector, get,
    human_duration, int, list, name, opt_int, text, time, wide,
};

// ---------------------------------------------------------------------------------------
// Columns

#[rustfmt::skip]
pub(super) const JOB_COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", "Status of the job."),
    col("Completions", "string", "The number of pods which reached phase Succeeded."),
    col("Duration", "string", "Time required to complete the job."),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", "A label query over pods that should match the pod count."),
];

#[rustfmt::skip]
pub(super) const CRON_JOB_COLUMNS: &[Column] = &[
    NAME,
    col("Schedule", "string", "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
    col("Timezone", "string", "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."),
    col("Suspend", "boolean", "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions."),
    col("Active", "integer", "A list of pointers to currently running jobs."),
    col("Last Schedule", "string", "Information when was the last time the job was successfully scheduled."),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", "A label query over pods that should match the pod count."),
];

// ---------------------------------------------------------------------------------------
// Printers

pub(super) fn job_cells(job: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let succeeded = int(job, &["status", "succeeded"]);
    let completions = opt_int(job, &["spec", "completions"]);
    let parallelism = opt_int(job, &["spec", "parallelism"]);
    let completions = match (completions, parallelism) {
        (Some(c), _) => format!("{succeeded}/{c}"),
        // Defaulting sets completions = 1 when neither is given.
        (None, None) => format!("{succeeded}/1"),
        (None, Some(p)) if p > 1 => format!("{succeeded}/1 of {p}"),
        (None, Some(_)) => format!("{succeeded}/1"),
    };
    let duration = match (time(job, &["status", "startTime"]), time(job, &["status", "completionTime"])) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(now - start),
        (Some(start), Some(end)) => human_duration(end - start),
    };
    let conditions = list(job, &["status", "conditions"]);
    let has =
        |ty: &str| conditions.iter().find(|c| text(c, &["type"]) == ty).is_some_and(|c| text(c, &["status"]) == "True");
    let status = if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if get(job, &["metadata", "deletionTimestamp"]).is_some() {
        "Terminating"
    } else if has("Suspended") {
        "Suspended"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (containers, images) = container_cells(job, &["spec", "template", "spec", "containers"]);
    vec![
        name(job).into(),
        status.into(),
        completions.into(),
        duration.into(),
        age(job, now),
        containers.into(),
        images.into(),
        format_label_selector(get(job, &["spec", "selector"])).into(),
    ]
}

pub(super) fn cron_job_cells(cj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let last_schedule = match time(cj, &["status", "lastScheduleTime"]) {
        Some(t) => human_duration(now - t),
        None => "<none>".to_string(),
    };
    let suspend = if flag(cj, &["spec", "suspend"]) { "True" } else { "False" };
    let (containers, images) = container_cells(cj, &["spec", "jobTemplate", "spec", "template", "spec", "containers"]);
    vec![
        name(cj).into(),
        text(cj, &["spec", "schedule"]).into(),
        default_str(text(cj, &["spec", "timeZone"]), "<none>").into(),
        suspend.into(),
        list(cj, &["status", "active"]).len().into(),
        last_schedule.into(),
        age(cj, now),
        containers.into(),
        images.into(),
        format_label_selector(get(cj, &["spec", "jobTemplate", "spec", "selector"])).into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{ago, cells, row};
    use serde_json::{Value, json};

    #[test]
    fn job_completions_status_and_duration() {
        let job = |spec: Value, status: Value| cells("batch", "Job", json!({"spec": spec, "status": status}));
        let (names, _) = row("batch", "Job", json!({}));
        assert_eq!(names, ["Name", "Status", "Completions", "Duration", "Age", "Containers", "Images", "Selector"]);
        assert_eq!(job(json!({"completions": 5}), json!({"succeeded": 2}))[2], "2/5");
        assert_eq!(job(json!({}), json!({}))[2], "0/1");
        assert_eq!(job(json!({"parallelism": 1}), json!({"succeeded": 1}))[2], "1/1");
        assert_eq!(job(json!({"parallelism": 4}), json!({"succeeded": 3}))[2], "3/1 of 4");

        let running = job(json!({}), json!({"startTime": ago(150)}));
        assert_eq!(running[1], "Running");
        assert_eq!(running[3], "2m30s");
        let done = job(
            json!({"completions": 1, "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}}}),
            json!({"succeeded": 1, "startTime": ago(100), "completionTime": ago(40),
                   "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}),
        );
        assert_eq!(done[1], "Complete");
        assert_eq!(done[3], "60s");
        assert_eq!(done[7], "batch.kubernetes.io/controller-uid=u1");
        let failed = job(json!({}), json!({"conditions": [{"type": "Failed", "status": "True"}]}));
        assert_eq!(failed[1], "Failed");
        assert_eq!(failed[3], "");
        assert_eq!(job(json!({}), json!({"conditions": [{"type": "Suspended", "status": "True"}]}))[1], "Suspended");
    }

    #[test]
    fn cron_job_columns() {
        let (names, c) = row(
            "batch",
            "CronJob",
            json!({"metadata": {"name": "tick"}, "spec": {"schedule": "*/5 * * * *", "suspend": true},
                   "status": {"active": [{"name": "tick-1"}], "lastScheduleTime": ago(60)}}),
        );
        assert_eq!(
            names,
            [
                "Name",
                "Schedule",
                "Timezone",
                "Suspend",
                "Active",
                "Last Schedule",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        assert_eq!(
            &c[..6],
            &[json!("tick"), json!("*/5 * * * *"), json!("<none>"), json!("True"), json!(1), json!("60s")]
        );
    }
}
