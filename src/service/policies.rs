//! Automatic backups of a cluster: its policy, and the first backup taken when it is enabled.
//! The scheduler (`crate::automatic`) takes the rest in their windows.

use chrono::Utc;
use serde::Deserialize;
use utoipa::ToSchema;

use super::Services;
use crate::domain::backups::{dedupe, validate_copies, CopyRequest};
use crate::domain::clusters::DedicatedOnly;
use crate::domain::schedule::{open_slot, Frequency, RetentionDays, Window};
use crate::error::Error;
use crate::store::{Cluster, CrossRegionCopy, Policy};

/// `POST /v2/clusters/{clusterId}/backups/policy`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetPolicy {
    pub enabled: bool,
    /// Days of the week, `"1,2,3,4,5,6,7"` (1 = Monday). Required when enabling.
    pub frequency: Option<String>,
    /// UTC window `"HH:mm-HH:mm"`. Required when enabling.
    pub start_time: Option<String>,
    /// 1–30. Required when enabling.
    #[schema(minimum = 1, maximum = 30)]
    pub retention_days: Option<i64>,
    /// Regions each automatic backup is copied to, each with its own `retentionDays` (1–30).
    #[serde(default)]
    pub cross_region_copies: Vec<CopyRequest>,
}

/// What a policy holds when none was ever set (and what disabling without a schedule keeps).
fn defaults() -> (Frequency, Window, RetentionDays) {
    (
        Frequency::parse("1,2,3,4,5,6,7").expect("valid"),
        Window::parse("00:00-23:59").expect("valid"),
        RetentionDays::parse("retentionDays", 7).expect("valid"),
    )
}

impl Services {
    /// Sets `cluster`'s policy. Disabling may omit the schedule (the previous one is kept for
    /// the next enable); enabling needs all of it, and starts the first automatic backup at
    /// once.
    pub async fn set_policy(&self, cluster: &Cluster, body: SetPolicy) -> Result<Policy, Error> {
        DedicatedOnly::AutomaticBackups
            .check(cluster.plan, "cluster", &cluster.id)
            .map_err(Error::Unprocessable)?;
        let previous = self.store.get_policy(&cluster.id).await?;
        let required =
            |field: &str| Error::invalid(format!("{field} is required when enabled is true"));
        let (default_days, default_window, default_retention) = defaults();
        let kept = previous.as_ref().filter(|_| !body.enabled);
        let frequency = match (&body.frequency, kept) {
            (Some(f), _) => Frequency::parse(f).map_err(Error::invalid)?,
            (None, Some(p)) => p.frequency.clone(),
            (None, None) if body.enabled => return Err(required("frequency")),
            (None, None) => default_days,
        };
        let window = match (&body.start_time, kept) {
            (Some(w), _) => Window::parse(w).map_err(Error::invalid)?,
            (None, Some(p)) => p.window,
            (None, None) if body.enabled => return Err(required("startTime")),
            (None, None) => default_window,
        };
        let retention_days = match (body.retention_days, kept) {
            (Some(d), _) => RetentionDays::parse("retentionDays", d).map_err(Error::invalid)?,
            (None, Some(p)) => p.retention_days,
            (None, None) if body.enabled => return Err(required("retentionDays")),
            (None, None) => default_retention,
        };
        validate_copies(
            &body.cross_region_copies,
            &cluster.region_id,
            &self.regions.ids(),
        )
        .map_err(Error::invalid)?;
        let cross_region_copies = body
            .cross_region_copies
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let days = c.retention_days.ok_or_else(|| {
                    Error::invalid(format!(
                        "crossRegionCopies[{i}].retentionDays is required: copies of automatic \
                         backups expire on their own"
                    ))
                })?;
                Ok(CrossRegionCopy {
                    region_id: c.region_id.clone(),
                    // validate_copies checked the range.
                    retention_days: RetentionDays::parse("retentionDays", days)
                        .map_err(Error::invalid)?,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let now = Utc::now();
        let newly_enabled = body.enabled && !previous.as_ref().is_some_and(|p| p.enabled);
        let policy = Policy {
            cluster_id: cluster.id.clone(),
            project_id: cluster.project_id.clone(),
            enabled: body.enabled,
            frequency,
            window,
            retention_days,
            cross_region_copies,
            enabled_at: if newly_enabled {
                Some(now)
            } else {
                previous.as_ref().and_then(|p| p.enabled_at)
            },
            updated_at: now,
        };
        self.store.put_policy(&policy).await?;
        if newly_enabled {
            // Inside an open window the first backup is that slot's (the scheduler will not
            // take a second one for it); outside, one per day however often it is toggled.
            let key = match open_slot(now, &policy.frequency, &policy.window) {
                Some(slot) => dedupe::auto_slot(&cluster.id, slot),
                None => dedupe::auto_enabled(&cluster.id, now.date_naive()),
            };
            self.start_auto_backup(&policy, &key, now).await?;
        }
        tracing::info!(cluster_id = %cluster.id, enabled = policy.enabled, "backup policy set");
        Ok(policy)
    }
}
