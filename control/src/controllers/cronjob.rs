//! CronJob controller: creates Jobs on a cron schedule, as Kubernetes 1.32's CronJob
//! controller (v2).
//!
//! - Schedules: robfig/cron's standard parser (5 fields with `*`, lists, ranges, steps,
//!   JAN..DEC / SUN..SAT names; day-of-month and day-of-week are ORed unless either starts
//!   with `*`), the descriptors @yearly/@annually/@monthly/@weekly/@daily/@midnight/@hourly
//!   and `@every DURATION`. Times are evaluated in `spec.timeZone`, any name of the IANA
//!   time zone database (compiled in, as kube-controller-manager embeds Go's tzdata; UTC
//!   when unset). Across a DST change a wall-clock time the change skips does not run and
//!   one it repeats runs at both instants, as robfig/cron does. An unknown zone (possible
//!   only for objects stored before validation) gets an UnknownTimeZone event.
//! - The due time is the most recent schedule time after `lastScheduleTime` (or creation),
//!   and after `now - startingDeadlineSeconds`; over 100 missed times adds a
//!   TooManyMissedTimes warning but the most recent still runs, as in Kubernetes 1.32.
//! - A due time runs once: the Job is named `NAME-<minutes since epoch>` and the time is
//!   recorded in `lastScheduleTime`; an owned Job already carrying that name is taken as
//!   this run (a crash between create and status write creates nothing twice).
//! - Forbid skips while a Job is active (the run starts later if still within its
//!   deadline); Replace deletes the active Jobs first.
//! - `status.active` lists only Jobs this controller started; finished ones leave it
//!   (SawCompletedJob), and `lastSuccessfulTime` is the latest completionTime of an owned
//!   Complete Job (including ones made by `kubectl create job --from=cronjob/…`).
//! - History: finished Jobs beyond successfulJobsHistoryLimit / failedJobsHistoryLimit
//!   are deleted, oldest start first, even while suspended.
//! - Every event goes through a de-duplication against the events already stored, so a
//!   plan that repeats each pass (JobAlreadyActive, MissSchedule…) records it once.

use std::collections::HashSet;

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};

use super::objects::{by_namespace, controller_write_options, deleting, info, name, parse_time, timestamp, uid};
use super::owner::{controller_ref, controller_uid};
use super::status::{job_finished, write_status};
use crate::apiserver::Api;
use crate::apiserver::error::ApiError;
use crate::apiserver::service::DeleteOptions;

const COMPONENT: &str = "cronjob-controller";
pub(crate) const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// More missed start times than this draw a TooManyMissedTimes warning.
const MANY_MISSED: i64 = 100;

// ---- schedules ----

/// A parsed cron schedule.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Schedule {
    /// Bit sets of allowed minutes, hours, days of month, months and days of week; the
    /// star flags say the day field started with `*` or `?` (robfig's starBit).
    Fields { minute: u64, hour: u64, dom: u64, month: u64, dow: u64, dom_star: bool, dow_star: bool },
    /// `@every D`: D after the previous time (whole seconds, at least one).
    Every(i64),
}

const MONTHS: &[&str] = &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn cron_int(e: &str) -> Result<u64, String> {
    let n: i64 = e.parse().map_err(|_| format!("failed to parse int from {e}: strconv.Atoi: parsing \"{e}\": invalid syntax"))?;
    u64::try_from(n).map_err(|_| format!("negative number ({n}) not allowed: {e}"))
}

/// One comma-separated expression of a field: its bits and whether it is a bare star.
fn cron_range(expr: &str, min: u64, max: u64, names: &[&str], base: u64) -> Result<(u64, bool), String> {
    let rs: Vec<&str> = expr.split('/').collect();
    let lh: Vec<&str> = rs[0].split('-').collect();
    let value = |e: &str| match names.iter().position(|n| n.eq_ignore_ascii_case(e)) {
        Some(i) => Ok(i as u64 + base),
        None => cron_int(e),
    };
    let mut star = false;
    let (start, mut end) = if lh[0] == "*" || lh[0] == "?" {
        star = true;
        (min, max)
    } else {
        let s = value(lh[0])?;
        match lh.len() {
            1 => (s, s),
            2 => (s, value(lh[1])?),
            _ => return Err(format!("too many hyphens: {expr}")),
        }
    };
    let step = match rs.len() {
        1 => 1,
        2 => {
            let step = cron_int(rs[1])?;
            if lh.len() == 1 {
                end = max;
            }
            if step > 1 {
                star = false;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < min {
        return Err(format!("beginning of range ({start}) below minimum ({min}): {expr}"));
    }
    if end > max {
        return Err(format!("end of range ({end}) above maximum ({max}): {expr}"));
    }
    if start > end {
        return Err(format!("beginning of range ({start}) beyond end of range ({end}): {expr}"));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    let mut bits = 0u64;
    let mut i = start;
    while i <= end {
        bits |= 1 << i;
        i += step;
    }
    Ok((bits, star))
}

fn cron_field(field: &str, min: u64, max: u64, names: &[&str], base: u64) -> Result<(u64, bool), String> {
    let mut bits = 0;
    let mut star = false;
    for e in field.split(',') {
        let (b, s) = cron_range(e, min, max, names, base)?;
        bits |= b;
        star |= s;
    }
    Ok((bits, star))
}

/// Go duration text as whole seconds (units h, m, s, ms, us, µs, ns; fractions allowed).
fn go_duration_seconds(d: &str) -> Option<i64> {
    let mut rest = d.strip_prefix('+').unwrap_or(d);
    if rest == "0" {
        return Some(0);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += n * unit;
        rest = &rest[unit_end..];
    }
    Some(total.round() as i64)
}

/// Parses a schedule as Kubernetes does (robfig/cron v3 `ParseStandard`).
pub(crate) fn parse_schedule(spec: &str) -> Result<Schedule, String> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err("empty spec string".into());
    }
    let fields = match spec {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ if spec.starts_with('@') => {
            return match spec.strip_prefix("@every ") {
                Some(d) => match go_duration_seconds(d.trim()) {
                    Some(s) => Ok(Schedule::Every(s.max(1))),
                    None => Err(format!("failed to parse duration {spec}: time: invalid duration \"{}\"", d.trim())),
                },
                None => Err(format!("unrecognized descriptor: {spec}")),
            };
        }
        _ => spec,
    };
    let f: Vec<&str> = fields.split_whitespace().collect();
    if f.len() != 5 {
        return Err(format!("expected exactly 5 fields, found {}: [{}]", f.len(), f.join(" ")));
    }
    let (minute, _) = cron_field(f[0], 0, 59, &[], 0)?;
    let (hour, _) = cron_field(f[1], 0, 23, &[], 0)?;
    let (dom, dom_star) = cron_field(f[2], 1, 31, &[], 0)?;
    let (month, _) = cron_field(f[3], 1, 12, MONTHS, 1)?;
    let (dow, dow_star) = cron_field(f[4], 0, 6, DAYS, 0)?;
    Ok(Schedule::Fields { minute, hour, dom, month, dow, dom_star, dow_star })
}

fn bit(set: u64, i: u32) -> bool {
    set & (1 << i) != 0
}

impl Schedule {
    /// The first schedule time strictly after `after`, evaluated in `zone`; None when there
    /// is none within five years (e.g. "0 0 30 2 *").
    pub(crate) fn next(&self, after: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        if let Schedule::Every(secs) = *self {
            let whole = after - Duration::nanoseconds(i64::from(after.timestamp_subsec_nanos()));
            return Some(whole + Duration::seconds(secs));
        }
        // Wall-clock times that match, mapped to the instants they name in the zone (none
        // in a spring-forward gap, two in a fall-back hour). A repeated hour can put a
        // later wall time at an earlier instant, so search from a little before `after`'s
        // wall time and stop once wall times are well past the best instant found.
        const SLACK: Duration = Duration::hours(3);
        let offset = |t: DateTime<Utc>| zone.offset_from_utc_datetime(&t.naive_utc()).fix();
        if offset(after - SLACK) == offset(after) && offset(after) == offset(after + SLACK) {
            // No offset change near `after`: the next matching wall time names the next
            // instant, unless it falls in a later gap or repeated hour (searched below).
            let wall = self.next_wall(after.with_timezone(&zone).naive_local())?;
            if let LocalResult::Single(t) = zone.from_local_datetime(&wall) {
                return Some(t.with_timezone(&Utc));
            }
        }
        let mut wall = self.next_wall(after.with_timezone(&zone).naive_local() - SLACK)?;
        let mut best: Option<DateTime<Utc>> = None;
        loop {
            let instants = match zone.from_local_datetime(&wall) {
                LocalResult::Single(a) => vec![a],
                LocalResult::Ambiguous(a, b) => vec![a, b],
                LocalResult::None => vec![],
            };
            for t in instants.into_iter().map(|t| t.with_timezone(&Utc)) {
                if t > after && best.is_none_or(|b| t < b) {
                    best = Some(t);
                }
            }
            if let Some(b) = best
                && wall >= b.with_timezone(&zone).naive_local() + SLACK
            {
                return best;
            }
            match self.next_wall(wall) {
                Some(w) => wall = w,
                None => return best,
            }
        }
    }

    /// The first wall-clock minute strictly after `after` that the fields match; None
    /// when there is none within five years.
    fn next_wall(&self, after: NaiveDateTime) -> Option<NaiveDateTime> {
        let Schedule::Fields { minute, hour, dom, month, dow, dom_star, dow_star } = *self else { return None };
        let mut t: NaiveDateTime = after.date().and_hms_opt(after.hour(), after.minute(), 0)? + Duration::minutes(1);
        let limit = t.year() + 5;
        let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0);
        loop {
            if t.year() > limit {
                return None;
            }
            if !bit(month, t.month()) {
                let (y, m) = if t.month() == 12 { (t.year() + 1, 1) } else { (t.year(), t.month() + 1) };
                t = midnight(NaiveDate::from_ymd_opt(y, m, 1)?)?;
                continue;
            }
            let dom_ok = bit(dom, t.day());
            let dow_ok = bit(dow, t.weekday().num_days_from_sunday());
            let day_ok = if dom_star || dow_star { dom_ok && dow_ok } else { dom_ok || dow_ok };
            if !day_ok {
                t = midnight(t.date().succ_opt()?)?;
                continue;
            }
            if !bit(hour, t.hour()) {
                t = t.date().and_hms_opt(t.hour(), 0, 0)? + Duration::hours(1);
                continue;
            }
            if !bit(minute, t.minute()) {
                t += Duration::minutes(1);
                continue;
            }
            return Some(t);
        }
    }
}

/// `spec.timeZone` as a zone of the IANA database (UTC when unset), with Go's
/// `time.LoadLocation` error text for a name it does not know.
pub(crate) fn parse_time_zone(tz: Option<&str>) -> Result<Tz, String> {
    match tz.filter(|t| !t.is_empty()) {
        None => Ok(Tz::UTC),
        Some(name) => flotilla_api::validation::time_zone(name).ok_or_else(|| format!("unknown time zone {name}")),
    }
}

/// The most recent schedule time in (earliest, now] and how many were missed (Kubernetes'
/// `mostRecentScheduleTime`, counting with the interval of the first two times).
pub(crate) fn most_recent(sched: &Schedule, zone: Tz, earliest: DateTime<Utc>, now: DateTime<Utc>) -> Result<(Option<DateTime<Utc>>, i64), String> {
    const TOO_CLOSE: &str = "time difference between two schedules is less than 1 second";
    let Some(t1) = sched.next(earliest, zone) else { return Err(TOO_CLOSE.into()) };
    if now < t1 {
        return Ok((None, 0));
    }
    let Some(t2) = sched.next(t1, zone) else { return Ok((Some(t1), 1)) };
    if now < t2 {
        return Ok((Some(t1), 1));
    }
    let interval = (t2 - t1).num_seconds();
    if interval < 1 {
        return Err(TOO_CLOSE.into());
    }
    let missed = (now - t1).num_seconds() / interval + 1;
    let scan = |from: DateTime<Utc>| {
        let mut latest = None;
        let mut t = sched.next(from, zone);
        while let Some(x) = t.filter(|x| *x <= now) {
            latest = Some(x);
            t = sched.next(x, zone);
        }
        latest
    };
    // Jump close to `now`, then step: long outages cost a few iterations, not millions.
    let potential = t1 + Duration::seconds((missed - 2).max(0) * interval);
    let latest = scan(potential).or_else(|| scan(t1)).or(Some(t1));
    Ok((latest, missed))
}

// ---- plan ----

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    /// Delete this Job (Background), recording SuccessfulDelete.
    DeleteJob { name: String, uid: String },
    /// Create this Job, recording SuccessfulCreate; its reference (by name) in the
    /// following Status step gets the created uid, or is dropped if the create fails.
    CreateJob { job: Value },
    /// Replace the CronJob's status.
    Status { status: Value },
    /// Record an event on the CronJob (unless an identical one is already stored).
    Event { type_: &'static str, reason: &'static str, message: String },
}

fn warn(reason: &'static str, message: String) -> Step {
    Step::Event { type_: "Warning", reason, message }
}

fn job_ref(ns: &str, name: &str, uid: Option<&str>, rv: Option<&str>) -> Value {
    let mut r = json!({"kind": "Job", "namespace": ns, "name": name});
    if let Some(u) = uid {
        r["uid"] = json!(u);
    }
    r["apiVersion"] = json!("batch/v1");
    if let Some(v) = rv {
        r["resourceVersion"] = json!(v);
    }
    r
}

/// The Job the CronJob runs at `scheduled`.
pub(crate) fn job_from_template(cj: &Value, scheduled: DateTime<Utc>, zone: Tz) -> Value {
    let t = &cj["spec"]["jobTemplate"];
    let mut meta = Map::new();
    meta.insert("name".into(), json!(job_name(cj, scheduled)));
    meta.insert("namespace".into(), cj["metadata"]["namespace"].clone());
    if let Some(l) = t["metadata"]["labels"].as_object() {
        meta.insert("labels".into(), Value::Object(l.clone()));
    }
    let mut ann = t["metadata"]["annotations"].as_object().cloned().unwrap_or_default();
    ann.insert(SCHEDULED_TIMESTAMP.into(), json!(scheduled.with_timezone(&zone).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
    meta.insert("annotations".into(), Value::Object(ann));
    meta.insert("ownerReferences".into(), json!([controller_ref(cj, "batch/v1", "CronJob")]));
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": t["spec"].clone()})
}

pub(crate) fn job_name(cj: &Value, scheduled: DateTime<Utc>) -> String {
    format!("{}-{}", name(cj), scheduled.timestamp().div_euclid(60))
}

/// Finished Jobs beyond the history limits, oldest start first.
fn prune(cj: &Value, owned: &[&Value]) -> Vec<Step> {
    let mut steps = Vec::new();
    for (kind, limit) in [("Complete", "successfulJobsHistoryLimit"), ("Failed", "failedJobsHistoryLimit")] {
        let Some(limit) = cj["spec"][limit].as_i64() else { continue };
        let mut done: Vec<&Value> = owned.iter().copied().filter(|j| !deleting(j) && job_finished(j) == Some(kind)).collect();
        let excess = done.len() as i64 - limit.max(0);
        if excess <= 0 {
            continue;
        }
        done.sort_by(|a, b| {
            let (sa, sb) = (parse_time(&a["status"]["startTime"]), parse_time(&b["status"]["startTime"]));
            match (sa, sb) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            }
            .then_with(|| name(a).cmp(name(b)))
        });
        for j in done.into_iter().take(excess as usize) {
            steps.push(Step::DeleteJob { name: name(j).to_string(), uid: uid(j).to_string() });
        }
    }
    steps
}

/// Pure: what to do for `cj` given every Job in its namespace, at `now`.
pub(crate) fn plan(cj: &Value, jobs: &[&Value], now: DateTime<Utc>) -> Vec<Step> {
    let ns = cj["metadata"]["namespace"].as_str().unwrap_or("default");
    let cj_uid = uid(cj);
    let owned: Vec<&Value> = jobs.iter().copied().filter(|j| controller_uid(j) == Some(cj_uid)).collect();
    let old = &cj["status"];
    let mut active: Vec<Value> = old["active"].as_array().cloned().unwrap_or_default();
    let mut last_schedule = old["lastScheduleTime"].clone();
    let mut last_success = parse_time(&old["lastSuccessfulTime"]);
    let mut steps = Vec::new();
    let mut events = Vec::new();
    let in_active = |active: &[Value], u: &str| active.iter().any(|r| r["uid"].as_str() == Some(u));

    for j in &owned {
        let done = job_finished(j);
        if done.is_some() && in_active(&active, uid(j)) {
            active.retain(|r| r["uid"].as_str() != Some(uid(j)));
            let message = format!("Saw completed job: {}, condition: {}", name(j), done.unwrap_or(""));
            events.push(Step::Event { type_: "Normal", reason: "SawCompletedJob", message });
        }
        if done == Some("Complete")
            && let Some(t) = parse_time(&j["status"]["completionTime"])
            && last_success.is_none_or(|l| t > l)
        {
            last_success = Some(t);
        }
    }
    let owned_uids: HashSet<&str> = owned.iter().map(|j| uid(j)).collect();
    active.retain(|r| {
        let present = r["uid"].as_str().is_some_and(|u| owned_uids.contains(u));
        if !present {
            let message = format!("Active job went missing: {}", r["name"].as_str().unwrap_or(""));
            events.push(Step::Event { type_: "Normal", reason: "MissingJob", message });
        }
        present
    });

    let scheduled = if deleting(cj) { None } else { due(cj, now, &mut events) };
    let mut created = None;
    if let Some((at, zone)) = scheduled {
        let job_name = job_name(cj, at);
        let too_late = cj["spec"]["startingDeadlineSeconds"].as_i64().is_some_and(|d| at + Duration::seconds(d) < now);
        let already = active.iter().any(|r| r["name"].as_str() == Some(job_name.as_str())) || parse_time(&last_schedule) == Some(at);
        let existing = owned.iter().find(|j| name(j) == job_name);
        if already {
            // This time already ran.
        } else if too_late {
            let t = at.format("%a, %d %b %Y %H:%M:%S %z");
            events.push(Step::Event { type_: "Normal", reason: "MissSchedule", message: format!("Missed scheduled time to start a job: {t}") });
        } else if let Some(j) = existing {
            // Created by an earlier pass whose status write did not land.
            if job_finished(j).is_none() {
                active.push(job_ref(ns, name(j), Some(uid(j)), j["metadata"]["resourceVersion"].as_str()));
            }
            last_schedule = json!(timestamp(at));
        } else if cj["spec"]["concurrencyPolicy"] == "Forbid" && !active.is_empty() {
            events.push(Step::Event {
                type_: "Normal",
                reason: "JobAlreadyActive",
                message: "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
            });
        } else {
            if cj["spec"]["concurrencyPolicy"] == "Replace" {
                for r in active.drain(..) {
                    steps.push(Step::DeleteJob { name: r["name"].as_str().unwrap_or("").to_string(), uid: r["uid"].as_str().unwrap_or("").to_string() });
                }
            }
            created = Some(Step::CreateJob { job: job_from_template(cj, at, zone) });
            active.push(job_ref(ns, &job_name, None, None));
            last_schedule = json!(timestamp(at));
        }
    }
    steps.extend(created);

    let mut status = match old {
        Value::Object(o) => o.clone(),
        _ => Map::new(),
    };
    if active.is_empty() {
        status.remove("active");
    } else {
        status.insert("active".into(), Value::Array(active));
    }
    if !last_schedule.is_null() {
        status.insert("lastScheduleTime".into(), last_schedule);
    }
    if let Some(t) = last_success {
        status.insert("lastSuccessfulTime".into(), json!(timestamp(t)));
    }
    let status = Value::Object(status);
    if status != *old && !(old.is_null() && status == json!({})) {
        steps.push(Step::Status { status });
    }
    steps.extend(prune(cj, &owned));
    steps.extend(events);
    steps
}

/// The schedule time due now, if any, with the zone it is evaluated in; problems with
/// the zone or the schedule become warning events.
fn due(cj: &Value, now: DateTime<Utc>, events: &mut Vec<Step>) -> Option<(DateTime<Utc>, Tz)> {
    let mut schedule = cj["spec"]["schedule"].as_str().unwrap_or("").trim();
    let mut tz = cj["spec"]["timeZone"].as_str();
    // A legacy "TZ=zone" / "CRON_TZ=zone" prefix (refused for new objects by validation).
    if (schedule.starts_with("TZ=") || schedule.starts_with("CRON_TZ=")) && tz.is_none() {
        let (prefix, rest) = schedule.split_once(' ').unwrap_or((schedule, ""));
        tz = prefix.split_once('=').map(|(_, z)| z);
        schedule = rest.trim();
    }
    let zone = match parse_time_zone(tz) {
        Ok(z) => z,
        Err(e) => {
            events.push(warn("UnknownTimeZone", format!("invalid timeZone: \"{}\": {e}", tz.unwrap_or(""))));
            return None;
        }
    };
    if cj["spec"]["suspend"] == json!(true) {
        return None;
    }
    let sched = match parse_schedule(schedule) {
        Ok(s) => s,
        Err(e) => {
            events.push(warn("UnparseableSchedule", format!("unparseable schedule: \"{schedule}\" : {e}")));
            return None;
        }
    };
    let mut earliest = parse_time(&cj["status"]["lastScheduleTime"]).or_else(|| parse_time(&cj["metadata"]["creationTimestamp"]))?;
    if let Some(d) = cj["spec"]["startingDeadlineSeconds"].as_i64() {
        earliest = earliest.max(now - Duration::seconds(d));
    }
    match most_recent(&sched, zone, earliest, now) {
        Err(e) => {
            events.push(warn("InvalidSchedule", format!("invalid schedule: {schedule} : {e}")));
            None
        }
        Ok((at, missed)) => {
            if missed > MANY_MISSED {
                events.push(warn(
                    "TooManyMissedTimes",
                    "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".into(),
                ));
            }
            at.map(|t| (t, zone))
        }
    }
}

// ---- executor ----

/// Gives the reference of a Job this pass created its uid; for a failed create, drops
/// it and keeps the old lastScheduleTime so that a later pass retries the run.
fn fix_created_ref(status: &mut Value, old: &Value, job_name: &str, created: Option<&Value>) {
    let Some(o) = status.as_object_mut() else { return };
    if let Some(active) = o.get_mut("active").and_then(Value::as_array_mut) {
        match created {
            Some(r) => {
                for a in active.iter_mut().filter(|a| a["name"].as_str() == Some(job_name) && a["uid"].is_null()) {
                    *a = r.clone();
                }
            }
            None => active.retain(|a| a["name"].as_str() != Some(job_name)),
        }
        if active.is_empty() {
            o.remove("active");
        }
    }
    if created.is_none() {
        match old.get("lastScheduleTime") {
            Some(t) => {
                o.insert("lastScheduleTime".into(), t.clone());
            }
            None => {
                o.remove("lastScheduleTime");
            }
        }
    }
}

/// (involved uid, reason, message) of every stored core/v1 event.
fn recorded_events(objects: &[crate::store::Keyed]) -> HashSet<(String, String, String)> {
    objects
        .iter()
        .filter(|(k, _)| k.starts_with("core/events/"))
        .map(|(_, s)| {
            let v = &s.value;
            let s = |x: &Value| x.as_str().unwrap_or("").to_string();
            (s(&v["involvedObject"]["uid"]), s(&v["reason"]), s(&v["message"]))
        })
        .collect()
}

/// Plans every CronJob in `objects` and carries out the steps.
pub(crate) async fn reconcile_all(api: &Api, objects: &[crate::store::Keyed], now: DateTime<Utc>) -> Result<(), ApiError> {
    let jobs = by_namespace(objects, "batch/jobs");
    let none = Vec::new();
    let mut seen: Option<HashSet<(String, String, String)>> = None;
    for (ns, cronjobs) in by_namespace(objects, "batch/cronjobs") {
        let jobs = jobs.get(ns).unwrap_or(&none);
        for cj in cronjobs {
            let steps = plan(cj, jobs, now);
            if steps.is_empty() {
                continue;
            }
            let seen = seen.get_or_insert_with(|| recorded_events(objects));
            if let Err(e) = execute(api, cj, steps, seen).await {
                tracing::warn!(error = %e, cronjob = name(cj), namespace = ns, "cronjob sync failed");
            }
        }
    }
    Ok(())
}

async fn execute(api: &Api, cj: &Value, steps: Vec<Step>, seen: &HashSet<(String, String, String)>) -> Result<(), ApiError> {
    let jobs = info("batch", "jobs");
    let cronjobs = info("batch", "cronjobs");
    let ns = cj["metadata"]["namespace"].as_str().unwrap_or("default");
    let cj_uid = uid(cj).to_string();
    // Name of a Job this pass tried to create → its reference once created (None: failed).
    let mut created: Option<(String, Option<Value>)> = None;
    for step in steps {
        match step {
            Step::DeleteJob { name: job, uid: job_uid } => {
                let opts = DeleteOptions { uid: Some(job_uid), propagation: Some("Background".into()), ..Default::default() };
                match api.delete(jobs, Some(ns), &job, &opts).await {
                    Ok(_) => api.record_event(cj, "Normal", "SuccessfulDelete", &format!("Deleted job {job}"), COMPONENT).await,
                    Err(e) if e.is_transient() => {}
                    Err(e) => api.record_event(cj, "Warning", "FailedDelete", &format!("Deleted job: {}", e.message), COMPONENT).await,
                }
            }
            Step::CreateJob { job } => {
                let job_name = name(&job).to_string();
                match api.create(jobs, Some(ns), job, &controller_write_options()).await {
                    Ok(w) => {
                        let o = &w.object;
                        api.record_event(cj, "Normal", "SuccessfulCreate", &format!("Created job {job_name}"), COMPONENT).await;
                        let r = job_ref(ns, &job_name, Some(uid(o)), o["metadata"]["resourceVersion"].as_str());
                        created = Some((job_name, Some(r)));
                    }
                    Err(e) => {
                        if e.code != 409 {
                            api.record_event(cj, "Warning", "FailedCreate", &format!("Error creating job: {}", e.message), COMPONENT).await;
                        }
                        created = Some((job_name, None));
                    }
                }
            }
            Step::Status { mut status } => {
                if let Some((job_name, r)) = &created {
                    fix_created_ref(&mut status, &cj["status"], job_name, r.as_ref());
                }
                write_status(api, cronjobs, cj, status).await?;
            }
            Step::Event { type_, reason, message } => {
                if !seen.contains(&(cj_uid.clone(), reason.to_string(), message.clone())) {
                    api.record_event(cj, type_, reason, &message, COMPONENT).await;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).expect("time")
    }

    fn utc() -> Tz {
        Tz::UTC
    }

    fn cj(spec: Value, status: Value) -> Value {
        let mut c = json!({
            "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "tick", "namespace": "default", "uid": "cj-uid", "creationTimestamp": "2026-03-02T10:00:30Z"},
            "spec": {
                "schedule": "*/1 * * * *", "concurrencyPolicy": "Allow", "suspend": false,
                "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
                "jobTemplate": {"metadata": {"labels": {"team": "a"}}, "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x.wasm"}]}}}},
            },
            "status": status,
        });
        if let (Some(dst), Some(src)) = (c["spec"].as_object_mut(), spec.as_object()) {
            for (k, v) in src {
                dst.insert(k.clone(), v.clone());
            }
        }
        c
    }

    /// An owned Job: "" (running), "Complete" or "Failed", started at `start`.
    fn job(name: &str, state: &str, start: &str) -> Value {
        let mut j = json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("{name}-uid"), "resourceVersion": "7",
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "tick", "uid": "cj-uid", "controller": true}]},
            "status": {"startTime": start},
        });
        if !state.is_empty() {
            j["status"]["conditions"] = json!([{"type": state, "status": "True"}]);
            if state == "Complete" {
                j["status"]["completionTime"] = json!(start);
            }
        }
        j
    }

    fn active_ref(name: &str) -> Value {
        job_ref("default", name, Some(&format!("{name}-uid")), Some("7"))
    }

    fn created(steps: &[Step]) -> Vec<&Value> {
        steps.iter().filter_map(|s| if let Step::CreateJob { job } = s { Some(job) } else { None }).collect()
    }

    fn deleted(steps: &[Step]) -> Vec<&str> {
        steps.iter().filter_map(|s| if let Step::DeleteJob { name, .. } = s { Some(name.as_str()) } else { None }).collect()
    }

    fn status(steps: &[Step]) -> Value {
        steps.iter().find_map(|s| if let Step::Status { status } = s { Some(status.clone()) } else { None }).unwrap_or(Value::Null)
    }

    fn reasons(steps: &[Step]) -> Vec<&str> {
        steps.iter().filter_map(|s| if let Step::Event { reason, .. } = s { Some(*reason) } else { None }).collect()
    }

    #[test]
    fn next_times() {
        // (schedule, after, next)
        let table = [
            ("*/15 * * * *", "2026-03-02T10:07:12Z", "2026-03-02T10:15:00Z"),
            ("*/15 * * * *", "2026-03-02T10:15:00Z", "2026-03-02T10:30:00Z"),
            ("* * * * *", "2026-03-02T10:07:00Z", "2026-03-02T10:08:00Z"),
            ("0 9 * * MON-FRI", "2026-03-06T09:00:00Z", "2026-03-09T09:00:00Z"),
            ("30 2 1,15 * *", "2026-03-02T00:00:00Z", "2026-03-15T02:30:00Z"),
            ("0 0 1 JAN *", "2026-03-02T00:00:00Z", "2027-01-01T00:00:00Z"),
            ("5-10/5 */6 * * *", "2026-03-02T06:07:00Z", "2026-03-02T06:10:00Z"),
            // Day-of-month OR day-of-week when neither is a star: the 13th or a Friday.
            ("0 0 13 * FRI", "2026-03-02T00:00:00Z", "2026-03-06T00:00:00Z"),
            ("0 0 13 * fri", "2026-03-07T00:00:00Z", "2026-03-13T00:00:00Z"),
            // "*/1" keeps the star: AND semantics, so only Sundays.
            ("0 0 */1 * 0", "2026-03-02T00:00:00Z", "2026-03-08T00:00:00Z"),
            ("@hourly", "2026-03-02T10:07:00Z", "2026-03-02T11:00:00Z"),
            ("@daily", "2026-03-02T10:07:00Z", "2026-03-03T00:00:00Z"),
            ("@midnight", "2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z"),
            ("@weekly", "2026-03-02T10:07:00Z", "2026-03-08T00:00:00Z"),
            ("@monthly", "2026-03-02T10:07:00Z", "2026-04-01T00:00:00Z"),
            ("@yearly", "2026-03-02T10:07:00Z", "2027-01-01T00:00:00Z"),
            ("@annually", "2026-03-02T10:07:00Z", "2027-01-01T00:00:00Z"),
            ("@every 1m30s", "2026-03-02T10:07:00Z", "2026-03-02T10:08:30Z"),
            ("0 0 29 2 *", "2026-03-02T00:00:00Z", "2028-02-29T00:00:00Z"),
        ];
        for (spec, after, want) in table {
            let s = parse_schedule(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!(s.next(at(after), utc()), Some(at(want)), "{spec} after {after}");
        }
        assert_eq!(parse_schedule("0 0 30 2 *").map(|s| s.next(at("2026-01-01T00:00:00Z"), utc())), Ok(None));
    }

    #[test]
    fn schedule_errors() {
        let table = [
            ("", "empty spec string"),
            ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
            ("61 * * * *", "end of range (61) above maximum (59): 61"),
            ("* * * * 7", "end of range (7) above maximum (6): 7"),
            ("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1"),
            ("*/0 * * * *", "step of range should be a positive number: */0"),
            ("@fortnightly", "unrecognized descriptor: @fortnightly"),
            ("x * * * *", "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax"),
        ];
        for (spec, msg) in table {
            assert_eq!(parse_schedule(spec), Err(msg.to_string()), "{spec}");
        }
    }

    #[test]
    fn time_zones() {
        assert_eq!(parse_time_zone(None), Ok(Tz::UTC));
        assert_eq!(parse_time_zone(Some("")), Ok(Tz::UTC));
        for name in ["UTC", "Etc/GMT+5", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "US/Eastern"] {
            assert_eq!(parse_time_zone(Some(name)).map(|z| z.name().to_string()), Ok(name.to_string()));
        }
        for bad in ["america/new_york", "Etc/GMT+13", "+05:30", "Mars/Base", "Local", "../etc/passwd"] {
            assert_eq!(parse_time_zone(Some(bad)), Err(format!("unknown time zone {bad}")), "{bad}");
        }
        // 09:00 in Kolkata (+05:30) is 03:30 UTC; Etc/GMT+5 is five hours behind UTC.
        let s = parse_schedule("0 9 * * *").expect("schedule");
        assert_eq!(s.next(at("2026-03-02T04:00:00Z"), Tz::Asia__Kolkata), Some(at("2026-03-03T03:30:00Z")));
        assert_eq!(s.next(at("2026-03-02T04:00:00Z"), Tz::Etc__GMTPlus5), Some(at("2026-03-02T14:00:00Z")));
    }

    #[test]
    fn daylight_saving_changes_follow_robfig_cron() {
        let ny = Tz::America__New_York;
        // (schedule, after, next): 2012-03-11 02:00 EST jumps to 03:00 EDT; 2012-11-04 02:00
        // EDT falls back to 01:00 EST.
        let cases = [
            // A time the spring-forward skips does not run that day.
            ("30 2 11 3 *", "2012-03-11T05:00:00Z", "2013-03-11T06:30:00Z"),
            ("0 * * * *", "2012-03-11T05:00:00Z", "2012-03-11T06:00:00Z"),
            ("0 * * * *", "2012-03-11T06:00:00Z", "2012-03-11T07:00:00Z"),
            // A time the fall-back repeats runs at both instants.
            ("30 2 4 11 *", "2012-11-04T04:00:00Z", "2012-11-04T07:30:00Z"),
            ("30 1 4 11 *", "2012-11-04T05:45:00Z", "2012-11-04T06:30:00Z"),
            ("30 1 4 11 *", "2012-11-04T04:00:00Z", "2012-11-04T05:30:00Z"),
            ("0 * * * *", "2012-11-04T04:00:00Z", "2012-11-04T05:00:00Z"),
            ("0 * * * *", "2012-11-04T05:00:00Z", "2012-11-04T06:00:00Z"),
            ("0 * * * *", "2012-11-04T06:00:00Z", "2012-11-04T07:00:00Z"),
            // A later wall time inside the repeated hour can be the earlier instant.
            ("0,55 1 4 11 *", "2012-11-04T05:50:00Z", "2012-11-04T05:55:00Z"),
            ("0 9 * * *", "2026-03-07T15:00:00Z", "2026-03-08T13:00:00Z"),
        ];
        for (spec, after, want) in cases {
            let s = parse_schedule(spec).expect(spec);
            assert_eq!(s.next(at(after), ny), Some(at(want)), "{spec} after {after}");
        }
    }

    #[test]
    fn creates_the_job_when_due() {
        let c = cj(json!({}), Value::Null);
        // Created 10:00:30; the first time is 10:01.
        assert!(plan(&c, &[], at("2026-03-02T10:00:59Z")).is_empty());
        let steps = plan(&c, &[], at("2026-03-02T10:01:07Z"));
        let jobs = created(&steps);
        assert_eq!(jobs.len(), 1);
        let minutes = at("2026-03-02T10:01:00Z").timestamp() / 60;
        assert_eq!(jobs[0]["metadata"]["name"], format!("tick-{minutes}"));
        assert_eq!(jobs[0]["metadata"]["labels"], json!({"team": "a"}));
        assert_eq!(jobs[0]["metadata"]["annotations"][SCHEDULED_TIMESTAMP], "2026-03-02T10:01:00Z");
        assert_eq!(jobs[0]["metadata"]["ownerReferences"][0]["kind"], "CronJob");
        assert_eq!(jobs[0]["spec"]["template"]["spec"]["restartPolicy"], "Never");
        let st = status(&steps);
        assert_eq!(st["lastScheduleTime"], "2026-03-02T10:01:00Z");
        assert_eq!(st["active"][0]["name"], format!("tick-{minutes}"));
        // Once recorded, the same time does not run again.
        let c2 = cj(json!({}), json!({"lastScheduleTime": "2026-03-02T10:01:00Z", "active": [active_ref(&format!("tick-{minutes}"))]}));
        let j = job(&format!("tick-{minutes}"), "", "2026-03-02T10:01:01Z");
        assert!(plan(&c2, &[&j], at("2026-03-02T10:01:40Z")).is_empty());
        // The annotation is written in the CronJob's zone.
        let c3 = cj(json!({"timeZone": "Asia/Kolkata"}), Value::Null);
        let steps = plan(&c3, &[], at("2026-03-02T10:01:07Z"));
        assert_eq!(created(&steps)[0]["metadata"]["annotations"][SCHEDULED_TIMESTAMP], "2026-03-02T15:31:00+05:30");
    }

    #[test]
    fn a_job_left_by_an_interrupted_pass_is_adopted_not_recreated() {
        let c = cj(json!({}), Value::Null);
        let name = format!("tick-{}", at("2026-03-02T10:01:00Z").timestamp() / 60);
        let j = job(&name, "", "2026-03-02T10:01:01Z");
        let steps = plan(&c, &[&j], at("2026-03-02T10:01:30Z"));
        assert!(created(&steps).is_empty());
        assert_eq!(status(&steps)["active"], json!([active_ref(&name)]));
    }

    #[test]
    fn forbid_and_replace() {
        let running = job("tick-1", "", "2026-03-02T10:00:00Z");
        let status_running = json!({"lastScheduleTime": "2026-03-02T10:00:00Z", "active": [active_ref("tick-1")]});
        let now = at("2026-03-02T10:01:05Z");
        let forbid = cj(json!({"concurrencyPolicy": "Forbid"}), status_running.clone());
        let steps = plan(&forbid, &[&running], now);
        assert!(created(&steps).is_empty());
        assert_eq!(reasons(&steps), vec!["JobAlreadyActive"]);
        let replace = cj(json!({"concurrencyPolicy": "Replace"}), status_running.clone());
        let steps = plan(&replace, &[&running], now);
        assert_eq!(deleted(&steps), vec!["tick-1"]);
        assert_eq!(created(&steps).len(), 1);
        assert_eq!(status(&steps)["active"].as_array().map(Vec::len), Some(1));
        let allow = cj(json!({}), status_running);
        let steps = plan(&allow, &[&running], now);
        assert!(deleted(&steps).is_empty());
        assert_eq!(status(&steps)["active"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn finished_jobs_leave_active_and_set_last_successful_time() {
        let done = job("tick-1", "Complete", "2026-03-02T10:00:20Z");
        let c = cj(json!({}), json!({"lastScheduleTime": "2026-03-02T10:00:00Z", "active": [active_ref("tick-1")]}));
        let steps = plan(&c, &[&done], at("2026-03-02T10:00:40Z"));
        let st = status(&steps);
        assert!(st.get("active").is_none());
        assert_eq!(st["lastSuccessfulTime"], "2026-03-02T10:00:20Z");
        assert!(steps.contains(&Step::Event { type_: "Normal", reason: "SawCompletedJob", message: "Saw completed job: tick-1, condition: Complete".into() }));
        // A Job in `active` that no longer exists is dropped.
        let steps = plan(&c, &[], at("2026-03-02T10:00:40Z"));
        assert!(status(&steps).get("active").is_none());
        assert_eq!(reasons(&steps), vec!["MissingJob"]);
    }

    #[test]
    fn history_limits_delete_the_oldest() {
        let ok: Vec<Value> = (1..=5).map(|i| job(&format!("ok{i}"), "Complete", &format!("2026-03-02T10:0{i}:00Z"))).collect();
        let bad: Vec<Value> = (1..=2).map(|i| job(&format!("bad{i}"), "Failed", &format!("2026-03-02T10:0{i}:00Z"))).collect();
        let running = job("run", "", "2026-03-02T09:00:00Z");
        let mut all: Vec<&Value> = ok.iter().chain(bad.iter()).collect();
        all.push(&running);
        let c = cj(json!({"suspend": true}), json!({"lastScheduleTime": "2026-03-02T10:05:00Z"}));
        let steps = plan(&c, &all, at("2026-03-02T10:05:30Z"));
        assert_eq!(deleted(&steps), vec!["ok1", "ok2", "bad1"]);
        let c = cj(json!({"suspend": true, "successfulJobsHistoryLimit": 0, "failedJobsHistoryLimit": 5}), json!({}));
        assert_eq!(deleted(&plan(&c, &all, at("2026-03-02T10:05:30Z"))).len(), 5);
    }

    #[test]
    fn missed_starts_and_deadlines() {
        // 200 missed minutes: a warning, and only the most recent time runs.
        let c = cj(json!({}), json!({"lastScheduleTime": "2026-03-02T06:00:00Z"}));
        let steps = plan(&c, &[], at("2026-03-02T09:20:30Z"));
        assert!(reasons(&steps).contains(&"TooManyMissedTimes"));
        assert_eq!(created(&steps).len(), 1);
        assert_eq!(status(&steps)["lastScheduleTime"], "2026-03-02T09:20:00Z");
        // 50 missed: no warning.
        let c = cj(json!({}), json!({"lastScheduleTime": "2026-03-02T08:30:00Z"}));
        let steps = plan(&c, &[], at("2026-03-02T09:20:30Z"));
        assert!(!reasons(&steps).contains(&"TooManyMissedTimes"));
        assert_eq!(status(&steps)["lastScheduleTime"], "2026-03-02T09:20:00Z");
        // startingDeadlineSeconds: 10:05 missed by 45 s with a 30 s deadline: nothing runs.
        let c = cj(json!({"schedule": "*/5 * * * *", "startingDeadlineSeconds": 30}), json!({"lastScheduleTime": "2026-03-02T10:00:00Z"}));
        assert!(plan(&c, &[], at("2026-03-02T10:05:45Z")).is_empty());
        // ...but within the deadline it does.
        assert_eq!(created(&plan(&c, &[], at("2026-03-02T10:05:20Z"))).len(), 1);
        // The deadline also bounds how far back missed times are counted.
        let c = cj(json!({"startingDeadlineSeconds": 120}), json!({"lastScheduleTime": "2026-03-01T00:00:00Z"}));
        let steps = plan(&c, &[], at("2026-03-02T09:20:30Z"));
        assert!(!reasons(&steps).contains(&"TooManyMissedTimes"));
        assert_eq!(created(&steps).len(), 1);
    }

    #[test]
    fn most_recent_counts_missed_times() {
        let s = parse_schedule("*/1 * * * *").expect("schedule");
        let (t, missed) = most_recent(&s, utc(), at("2026-03-02T10:00:00Z"), at("2026-03-02T10:00:59Z")).expect("ok");
        assert_eq!((t, missed), (None, 0));
        let (t, missed) = most_recent(&s, utc(), at("2026-03-02T10:00:00Z"), at("2026-03-02T10:01:00Z")).expect("ok");
        assert_eq!((t, missed), (Some(at("2026-03-02T10:01:00Z")), 1));
        let (t, missed) = most_recent(&s, utc(), at("2026-03-02T10:00:00Z"), at("2026-03-02T10:03:10Z")).expect("ok");
        assert_eq!((t, missed), (Some(at("2026-03-02T10:03:00Z")), 3));
        // Irregular schedule: weekdays at 9, across a weekend.
        let s = parse_schedule("0 9 * * 1-5").expect("schedule");
        let (t, _) = most_recent(&s, utc(), at("2026-03-05T10:00:00Z"), at("2026-03-09T08:00:00Z")).expect("ok");
        assert_eq!(t, Some(at("2026-03-06T09:00:00Z")));
        let never = parse_schedule("0 0 30 2 *").expect("schedule");
        assert!(most_recent(&never, utc(), at("2026-03-02T10:00:00Z"), at("2026-03-02T10:03:10Z")).is_err());
    }

    #[test]
    fn suspended_or_unknown_zone_creates_nothing() {
        let c = cj(json!({"suspend": true}), Value::Null);
        assert!(plan(&c, &[], at("2026-03-02T11:00:00Z")).is_empty());
        let c = cj(json!({"timeZone": "Mars/Olympus_Mons"}), Value::Null);
        let steps = plan(&c, &[], at("2026-03-02T11:00:00Z"));
        assert!(created(&steps).is_empty());
        assert_eq!(reasons(&steps), vec!["UnknownTimeZone"]);
    }

    #[test]
    fn failed_create_keeps_the_run_pending() {
        let mut st = json!({"active": [job_ref("default", "tick-9", None, None)], "lastScheduleTime": "2026-03-02T10:09:00Z"});
        fix_created_ref(&mut st, &json!({"lastScheduleTime": "2026-03-02T10:08:00Z"}), "tick-9", None);
        assert_eq!(st, json!({"lastScheduleTime": "2026-03-02T10:08:00Z"}));
        let mut st = json!({"active": [job_ref("default", "tick-9", None, None)], "lastScheduleTime": "2026-03-02T10:09:00Z"});
        let r = job_ref("default", "tick-9", Some("u9"), Some("3"));
        fix_created_ref(&mut st, &Value::Null, "tick-9", Some(&r));
        assert_eq!(st["active"], json!([{"kind": "Job", "namespace": "default", "name": "tick-9", "uid": "u9", "apiVersion": "batch/v1", "resourceVersion": "3"}]));
    }
}
