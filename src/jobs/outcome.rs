//! What an attempt's result becomes in the jobs table: a pure function, so every rule of it
//! (a cancel beats a failure, a retry only while attempts remain, a lost lease writes
//! nothing) is tested without a database.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::handler::{JobError, Stop};
use crate::store::Outcome;

/// How one attempt ended, as the worker saw it.
#[derive(Debug)]
pub(super) struct Attempted {
    pub result: Result<(), JobError>,
    /// A cancel was asked for while it ran (whatever the handler returned).
    pub canceled: bool,
    /// This attempt's number (1-based) and the job's limit.
    pub attempt: i32,
    pub max_attempts: i32,
}

/// The outcome to record, or `None` when the lease was lost (another process owns the job
/// now, so this one writes nothing). A retry is due `delay` after `now`.
pub(super) fn outcome(ended: Attempted, now: DateTime<Utc>, delay: Duration) -> Option<Outcome> {
    let canceled = || Outcome::Canceled {
        reason: "canceled by request".to_owned(),
    };
    Some(match ended.result {
        Ok(()) => Outcome::Succeeded,
        Err(JobError::Stopped(Stop::LeaseLost)) => return None,
        Err(JobError::Stopped(Stop::Interrupted)) => Outcome::Released,
        Err(_) if ended.canceled => canceled(),
        Err(JobError::Stopped(Stop::Canceled)) => canceled(),
        Err(JobError::Retryable(reason)) if ended.attempt < ended.max_attempts => Outcome::Retry {
            reason,
            run_after: now + super::worker::chrono_duration(delay),
        },
        Err(JobError::Retryable(reason)) => Outcome::Failed {
            reason: format!("{reason} (after {} attempts)", ended.attempt),
        },
        Err(JobError::Permanent(reason)) => Outcome::Failed { reason },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ended(result: Result<(), JobError>, canceled: bool, attempt: i32) -> Attempted {
        Attempted {
            result,
            canceled,
            attempt,
            max_attempts: 3,
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    }

    fn decide(result: Result<(), JobError>, canceled: bool, attempt: i32) -> Option<Outcome> {
        outcome(
            ended(result, canceled, attempt),
            now(),
            Duration::from_secs(4),
        )
    }

    #[test]
    fn success_release_and_lost_lease() {
        assert_eq!(decide(Ok(()), false, 1), Some(Outcome::Succeeded));
        assert_eq!(
            decide(Err(Stop::Interrupted.into()), false, 1),
            Some(Outcome::Released)
        );
        assert_eq!(decide(Err(Stop::LeaseLost.into()), true, 1), None);
    }

    #[test]
    fn a_cancel_beats_the_error_the_handler_returned() {
        let canceled = Some(Outcome::Canceled {
            reason: "canceled by request".into(),
        });
        assert_eq!(decide(Err(Stop::Canceled.into()), false, 1), canceled);
        assert_eq!(
            decide(Err(JobError::Retryable("net".into())), true, 1),
            canceled
        );
        assert_eq!(
            decide(Err(JobError::Permanent("bad".into())), true, 3),
            canceled
        );
    }

    #[test]
    fn retryable_errors_retry_until_the_last_attempt() {
        assert_eq!(
            decide(Err(JobError::Retryable("net".into())), false, 2),
            Some(Outcome::Retry {
                reason: "net".into(),
                run_after: now() + chrono::Duration::seconds(4),
            })
        );
        assert_eq!(
            decide(Err(JobError::Retryable("net".into())), false, 3),
            Some(Outcome::Failed {
                reason: "net (after 3 attempts)".into()
            })
        );
        assert_eq!(
            decide(Err(JobError::Permanent("bad input".into())), false, 1),
            Some(Outcome::Failed {
                reason: "bad input".into()
            })
        );
    }
}
