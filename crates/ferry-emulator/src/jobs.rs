//! Async batch jobs (`*_batch` launches and their `check` routes). Jobs run to completion at
//! launch; the stored result is handed out by `check`, after a configurable number of
//! `in_progress` answers so that clients' polling loops are exercised. Jobs live in memory
//! (a restart forgets them: `check` then answers `invalid_async_job_id`).

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;

use crate::wire::random_token;

/// What `check` returns for a job.
#[derive(Debug, Clone, PartialEq)]
pub enum JobStatus {
    /// Still running (as far as the client can tell).
    InProgress,
    /// Finished with this result (the `complete` member's fields).
    Complete(Value),
}

#[derive(Debug)]
struct Job {
    kind: &'static str,
    polls_left: u32,
    result: Value,
}

/// The account's jobs.
#[derive(Debug, Default)]
pub struct Jobs {
    jobs: Mutex<HashMap<String, Job>>,
}

impl Jobs {
    /// Stores a finished job of `kind` (the launching route family, so a job id of another
    /// family is not found); returns its id.
    pub fn launch(&self, kind: &'static str, result: Value, polls: u32) -> String {
        let id = format!("dbjid:{}", random_token(40));
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.insert(
            id.clone(),
            Job {
                kind,
                polls_left: polls,
                result,
            },
        );
        id
    }

    /// The status of a job, `None` if unknown.
    pub fn check(&self, kind: &'static str, id: &str) -> Option<JobStatus> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let job = jobs.get_mut(id).filter(|j| j.kind == kind)?;
        if job.polls_left > 0 {
            job.polls_left -= 1;
            return Some(JobStatus::InProgress);
        }
        Some(JobStatus::Complete(job.result.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_then_completes() {
        let jobs = Jobs::default();
        let id = jobs.launch("delete", Value::Bool(true), 1);
        assert_eq!(jobs.check("move", &id), None);
        assert_eq!(jobs.check("delete", &id), Some(JobStatus::InProgress));
        assert_eq!(
            jobs.check("delete", &id),
            Some(JobStatus::Complete(Value::Bool(true)))
        );
        assert_eq!(jobs.check("delete", "dbjid:nope"), None);
    }
}
