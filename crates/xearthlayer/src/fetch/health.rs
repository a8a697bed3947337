//! The circuit breaker of one provider. After `failures_to_trip` failed
//! attempts in a row, spread over at least `failing_for` (so one batch of
//! requests that time out together, a hiccup, does not count as a failing
//! provider), it is open: requests fail fast instead of each waiting
//! out its timeouts. After `probe_after` one request goes through as a
//! probe; its success closes the circuit, its failure opens it again for
//! twice as long (up to a ceiling). Any reply that is not a failure
//! (imagery, 404, a filler) counts as success.

use std::time::Duration;

use tokio::time::Instant;

/// Whether a request may go to the provider now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Yes,
    /// Yes, as the one probe of an open circuit.
    Probe,
    /// Failing: fail fast.
    No,
}

#[derive(Debug, Clone)]
pub struct Health {
    failures: u32,
    /// When the current run of failures began.
    since: Option<Instant>,
    open_until: Option<Instant>,
    open_for: Duration,
    probing: bool,
}

/// Thresholds of every provider's breaker.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    pub failures_to_trip: u32,
    pub failing_for: Duration,
    pub probe_after: Duration,
    pub max_probe_after: Duration,
}

impl Health {
    pub fn new(t: &Thresholds) -> Health {
        Health {
            failures: 0,
            since: None,
            open_until: None,
            open_for: t.probe_after,
            probing: false,
        }
    }

    /// Whether the circuit is open (failing fast or probing).
    pub fn is_open(&self) -> bool {
        self.open_until.is_some()
    }

    pub fn admit(&self, now: Instant) -> Admit {
        match self.open_until {
            None => Admit::Yes,
            Some(until) if now >= until && !self.probing => Admit::Probe,
            Some(_) => Admit::No,
        }
    }

    /// The probe admitted by [`Health::admit`] is under way.
    pub fn start_probe(&mut self) {
        self.probing = true;
    }

    /// The probe went away without an answer (cancelled): the next request
    /// probes instead.
    pub fn abandon_probe(&mut self) {
        self.probing = false;
    }

    pub fn succeeded(&mut self, t: &Thresholds) {
        *self = Health::new(t);
    }

    pub fn failed(&mut self, now: Instant, t: &Thresholds) {
        self.failures = self.failures.saturating_add(1);
        let since = *self.since.get_or_insert(now);
        if self.probing {
            self.probing = false;
            self.open_for = (self.open_for * 2).min(t.max_probe_after);
            self.open_until = Some(now + self.open_for);
        } else if self.open_until.is_none()
            && self.failures >= t.failures_to_trip
            && now - since >= t.failing_for
        {
            self.open_until = Some(now + self.open_for);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn trips_fails_fast_and_probes_later() {
        let t = Thresholds {
            failures_to_trip: 3,
            failing_for: Duration::from_secs(1),
            probe_after: Duration::from_secs(2),
            max_probe_after: Duration::from_secs(5),
        };
        let mut h = Health::new(&t);
        // Many failures at one instant (a batch timing out together): not yet.
        for _ in 0..10 {
            h.failed(Instant::now(), &t);
        }
        assert_eq!(h.admit(Instant::now()), Admit::Yes);
        tokio::time::advance(Duration::from_secs(1)).await;
        h.failed(Instant::now(), &t);
        assert_eq!(h.admit(Instant::now()), Admit::No);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(h.admit(Instant::now()), Admit::Probe);
        h.start_probe();
        assert_eq!(h.admit(Instant::now()), Admit::No, "one probe at a time");
        // The probe fails: open twice as long.
        h.failed(Instant::now(), &t);
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(h.admit(Instant::now()), Admit::No);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(h.admit(Instant::now()), Admit::Probe);
        h.start_probe();
        h.abandon_probe();
        assert_eq!(h.admit(Instant::now()), Admit::Probe);
        h.start_probe();
        h.succeeded(&t);
        assert_eq!(h.admit(Instant::now()), Admit::Yes);
        assert!(!h.is_open());
    }
}
