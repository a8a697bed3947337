//! How each provider is doing, as a user needs to see it: healthy,
//! throttled, or failing since when, and the [`Cause`] of its last
//! failures. The client records every attempt's outcome here; whether
//! requests fail fast is the breaker's call (see [`super::health`]), which
//! the client passes in when asked for a [`ProviderReport`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::cause::Cause;
use crate::provider::TileProvider;

/// A provider throttled this recently counts as throttled.
const THROTTLED_FOR: Duration = Duration::from_secs(10);

/// What a provider is doing now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderState {
    Healthy,
    /// It asked for fewer requests (429, 503) in the last seconds.
    Throttled,
    /// No answer since its failures began at `since`; `fast`: its
    /// requests fail fast now (its breaker is open).
    Failing {
        since: SystemTime,
        fast: bool,
    },
}

impl ProviderState {
    /// `healthy`, `throttled`, `failing`.
    pub fn name(&self) -> &'static str {
        match self {
            ProviderState::Healthy => "healthy",
            ProviderState::Throttled => "throttled",
            ProviderState::Failing { .. } => "failing",
        }
    }
}

/// One provider's standing, for the status view, the stats file and logs.
#[derive(Debug, Clone)]
pub struct ProviderReport {
    /// The provider's display name.
    pub name: String,
    /// Its cache key (names its disk-cache folder; unique per provider).
    pub key: String,
    pub state: ProviderState,
    /// Failed attempts since its last answer.
    pub failures: u64,
    /// Why its last failed attempt failed (or, with no failure since, the
    /// last "no imagery" answer).
    pub last_cause: Option<Cause>,
}

/// Every provider's record, by cache key.
#[derive(Debug, Default)]
pub(super) struct Standings {
    records: Mutex<HashMap<String, Record>>,
}

#[derive(Debug)]
struct Record {
    provider: Arc<dyn TileProvider>,
    failures: u64,
    /// When the current run of failures began.
    failing_since: Option<SystemTime>,
    throttled_at: Option<Instant>,
    last_cause: Option<Cause>,
}

impl Standings {
    fn with<T>(&self, provider: &Arc<dyn TileProvider>, f: impl FnOnce(&mut Record) -> T) -> T {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let record = records
            .entry(provider.cache_key().to_string())
            .or_insert_with(|| Record {
                provider: Arc::clone(provider),
                failures: 0,
                failing_since: None,
                throttled_at: None,
                last_cause: None,
            });
        f(record)
    }

    /// The provider answered with imagery.
    pub(super) fn answered(&self, provider: &Arc<dyn TileProvider>) {
        self.with(provider, |r| {
            r.failures = 0;
            r.failing_since = None;
        });
    }

    /// An attempt failed with `cause`. "No imagery here" is an answer and
    /// throttling a state of its own; anything else is a failure (a 403
    /// too, though the breaker does not count it: retrying will not help,
    /// and the user must hear of it).
    pub(super) fn failed(&self, provider: &Arc<dyn TileProvider>, cause: Cause) {
        self.with(provider, |r| {
            if cause == Cause::Throttled {
                r.throttled_at = Some(Instant::now());
            }
            if !matches!(cause, Cause::NoCoverage | Cause::Throttled) {
                r.failures += 1;
                r.failing_since.get_or_insert_with(SystemTime::now);
                r.last_cause = Some(cause);
            } else if r.failures == 0 || cause != Cause::NoCoverage {
                r.last_cause = Some(cause);
            }
        });
    }

    /// The cause of the provider's last failures.
    pub(super) fn last_cause(&self, provider: &Arc<dyn TileProvider>) -> Option<Cause> {
        self.with(provider, |r| r.last_cause.clone())
    }

    /// Every provider that was asked for something, by name; `is_failing`
    /// says whether its breaker is open.
    pub(super) fn reports(
        &self,
        is_failing: impl Fn(&dyn TileProvider) -> bool,
    ) -> Vec<ProviderReport> {
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let mut reports: Vec<ProviderReport> = records
            .iter()
            .map(|(key, r)| {
                let fast = is_failing(r.provider.as_ref());
                let state = if fast || r.failures > 0 {
                    ProviderState::Failing {
                        since: r.failing_since.unwrap_or_else(SystemTime::now),
                        fast,
                    }
                } else if r.throttled_at.is_some_and(|at| now - at < THROTTLED_FOR) {
                    ProviderState::Throttled
                } else {
                    ProviderState::Healthy
                };
                ProviderReport {
                    name: r.provider.display_name().to_string(),
                    key: key.clone(),
                    state,
                    failures: r.failures,
                    last_cause: r.last_cause.clone(),
                }
            })
            .collect();
        reports.sort_by(|a, b| a.key.cmp(&b.key));
        reports
    }
}
