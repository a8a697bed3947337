//! The download permits. One lock guards all the counts, so a permit is
//! taken against the global bound, the class's share and the provider's
//! limit at once:
//!
//! - at most `max_in_flight` requests in flight in all;
//! - background requests at most `max_background`, and none taken while a
//!   live request waits for a permit;
//! - per provider, an adaptive limit between 1 and the provider's own
//!   ceiling: halved (at most once a second) when it throttles or stalls,
//!   one more per answer, so it is back up quickly once it answers;
//! - per provider, a pause its `Retry-After` asked for, and its
//!   [`Health`]: while the circuit is open a request fails at once.
//!
//! A [`Permit`] gives itself back when dropped, also when its download is
//! cancelled; waiting is cancel-safe too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::health::{Admit, Health, Thresholds};
use super::{FetchConfig, FetchError, WorkClass};
use crate::provider::TileProvider;

/// Cuts of one provider's limit closer together than this count once: the
/// replies of one window of requests say the same thing.
const CUT_INTERVAL: Duration = Duration::from_secs(1);

/// What one attempt says about its provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// It answered (imagery, 404, a filler): grow the limit, close the circuit.
    pub answered: bool,
    /// It throttled or stalled: cut the limit.
    pub cut: bool,
    /// It failed (5xx, timeout, broken connection): towards opening the circuit.
    pub failed: bool,
    /// It asked for a pause (`Retry-After`).
    pub pause: Option<Duration>,
}

/// One provider's share of the gate.
#[derive(Debug)]
struct ProviderState {
    in_flight: usize,
    ceiling: usize,
    limit: f64,
    last_cut: Option<Instant>,
    paused_until: Option<Instant>,
    health: Health,
}

impl ProviderState {
    fn allowed(&self) -> usize {
        (self.limit as usize).clamp(1, self.ceiling)
    }
}

/// A request waiting for a permit. Waiters are woken one by one, only
/// when a permit they can take is free, so a release costs one wake-up,
/// not one per waiter.
#[derive(Debug)]
struct Waiter {
    id: u64,
    class: WorkClass,
    key: String,
    wake: Arc<Notify>,
    /// Woken and about to look again: counts as taking its permit.
    woken: bool,
}

#[derive(Debug, Default)]
struct State {
    live: usize,
    background: usize,
    /// In arrival order.
    waiters: Vec<Waiter>,
    next_waiter: u64,
    providers: HashMap<String, ProviderState>,
}

impl State {
    fn live_waiting(&self) -> usize {
        self.waiters
            .iter()
            .filter(|w| w.class == WorkClass::Live)
            .count()
    }
}

/// Counts of permits now, for status and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InFlight {
    pub live: usize,
    pub background: usize,
    /// Live requests waiting for a permit.
    pub live_waiting: usize,
}

#[derive(Debug)]
pub struct Gate {
    state: Mutex<State>,
    max_in_flight: usize,
    max_background: usize,
    max_pause: Duration,
    thresholds: Thresholds,
}

/// What a request may do now.
enum Step {
    Take(Admit),
    Wait,
    WaitUntil(Instant),
    Fail(&'static str),
}

impl Gate {
    pub fn new(config: &FetchConfig) -> Gate {
        let max_in_flight = config.max_in_flight.max(1);
        Gate {
            state: Mutex::default(),
            max_in_flight,
            max_background: config.max_background.clamp(1, max_in_flight),
            max_pause: config.max_retry_after,
            thresholds: Thresholds {
                failures_to_trip: config.failures_to_trip.max(1),
                failing_for: config.failing_for,
                probe_after: config.probe_after,
                max_probe_after: config.max_probe_after.max(config.probe_after),
            },
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update keeps the counts consistent step by step.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn in_flight(&self) -> InFlight {
        let s = self.lock();
        InFlight {
            live: s.live,
            background: s.background,
            live_waiting: s.live_waiting(),
        }
    }

    /// The provider's adaptive limit now (its ceiling before its first request).
    pub fn limit(&self, provider: &dyn TileProvider) -> usize {
        self.lock().providers.get(provider.cache_key()).map_or(
            provider.max_in_flight().clamp(1, self.max_in_flight),
            ProviderState::allowed,
        )
    }

    /// Whether the provider is failing fast (or being probed).
    pub fn is_failing(&self, provider: &dyn TileProvider) -> bool {
        self.lock()
            .providers
            .get(provider.cache_key())
            .is_some_and(|p| p.health.is_open())
    }

    /// What a request of `class` to `p` may do, given `taken` more permits
    /// (of woken waiters) than counted, per class and for the provider.
    fn step(
        &self,
        s: &State,
        p: &ProviderState,
        class: WorkClass,
        extra: (usize, usize, usize),
        live_waiting: usize,
        now: Instant,
    ) -> Step {
        let admit = p.health.admit(now);
        if admit == Admit::No {
            return Step::Fail("it keeps failing; it is probed again later");
        }
        if let Some(until) = p.paused_until.filter(|&until| until > now) {
            if until - now > self.max_pause {
                return Step::Fail("it asked for a pause longer than we wait");
            }
            return Step::WaitUntil(until);
        }
        let (live, background) = (s.live + extra.0, s.background + extra.1);
        let pool = live + background < self.max_in_flight;
        let share = match class {
            WorkClass::Live => true,
            WorkClass::Background => background < self.max_background && live_waiting == 0,
        };
        let own = match admit {
            Admit::Probe => p.in_flight + extra.2 == 0,
            _ => p.in_flight + extra.2 < p.allowed(),
        };
        if pool && share && own {
            Step::Take(admit)
        } else {
            Step::Wait
        }
    }

    /// Wakes the waiters that can take a permit now (live ones first), and
    /// those that are to fail fast.
    fn wake(&self, s: &mut State) {
        let now = Instant::now();
        let mut extra: HashMap<&str, usize> = HashMap::new();
        let (mut live, mut background) = (0, 0);
        for w in s.waiters.iter().filter(|w| w.woken) {
            *extra.entry(w.key.as_str()).or_default() += 1;
            match w.class {
                WorkClass::Live => live += 1,
                WorkClass::Background => background += 1,
            }
        }
        let mut wake = Vec::new();
        let live_waiting = s.live_waiting();
        for class in [WorkClass::Live, WorkClass::Background] {
            for (i, w) in s.waiters.iter().enumerate() {
                if w.woken || w.class != class {
                    continue;
                }
                if s.live + s.background + live + background >= self.max_in_flight
                    && class == WorkClass::Live
                {
                    break;
                }
                let Some(p) = s.providers.get(&w.key) else {
                    continue;
                };
                let own = extra.get(w.key.as_str()).copied().unwrap_or(0);
                match self.step(s, p, class, (live, background, own), live_waiting, now) {
                    Step::Take(_) => {
                        *extra.entry(w.key.as_str()).or_default() += 1;
                        match class {
                            WorkClass::Live => live += 1,
                            WorkClass::Background => background += 1,
                        }
                        wake.push(i);
                    }
                    Step::Fail(_) => wake.push(i),
                    Step::Wait | Step::WaitUntil(_) => {}
                }
            }
        }
        for i in wake {
            s.waiters[i].woken = true;
            s.waiters[i].wake.notify_one();
        }
    }

    /// Waits for a permit; fails at once when the provider is failing or
    /// has asked for a pause longer than we wait.
    pub async fn acquire(
        &self,
        provider: &dyn TileProvider,
        class: WorkClass,
    ) -> Result<Permit<'_>, FetchError> {
        let key = provider.cache_key();
        let mut waiting: Option<Waiting<'_>> = None;
        loop {
            let (wake, until) = {
                let mut s = self.lock();
                let now = Instant::now();
                if !s.providers.contains_key(key) {
                    let ceiling = provider.max_in_flight().clamp(1, self.max_in_flight);
                    s.providers.insert(
                        key.to_string(),
                        ProviderState {
                            in_flight: 0,
                            ceiling,
                            limit: ceiling as f64,
                            last_cut: None,
                            paused_until: None,
                            health: Health::new(&self.thresholds),
                        },
                    );
                }
                // A live request that is itself waiting does not hold
                // itself back; others waiting hold background work back.
                let mine = waiting.as_ref().map(|w| w.id);
                let live_waiting = s
                    .waiters
                    .iter()
                    .filter(|w| w.class == WorkClass::Live && Some(w.id) != mine)
                    .count();
                let p = &s.providers[key];
                // Woken waiters ahead of us hold their permits in spirit;
                // a newcomer must not take what a woken waiter was promised.
                let promised = s.waiters.iter().filter(|w| w.woken && Some(w.id) != mine);
                let (mut live, mut background, mut own) = (0, 0, 0);
                for w in promised {
                    match w.class {
                        WorkClass::Live => live += 1,
                        WorkClass::Background => background += 1,
                    }
                    if w.key == key {
                        own += 1;
                    }
                }
                match self.step(&s, p, class, (live, background, own), live_waiting, now) {
                    Step::Fail(why) => {
                        return Err(FetchError::Unavailable {
                            provider: provider.name().to_string(),
                            why,
                        });
                    }
                    Step::Take(admit) => {
                        let p = s.providers.get_mut(key).expect("inserted above");
                        p.in_flight += 1;
                        let probe = admit == Admit::Probe;
                        if probe {
                            p.health.start_probe();
                        }
                        match class {
                            WorkClass::Live => s.live += 1,
                            WorkClass::Background => s.background += 1,
                        }
                        if let Some(w) = waiting.take() {
                            s.waiters.retain(|x| x.id != w.id);
                            std::mem::forget(w);
                        }
                        return Ok(Permit {
                            gate: self,
                            key: key.to_string(),
                            class,
                            probe,
                            reported: false,
                        });
                    }
                    step => {
                        let until = match step {
                            Step::WaitUntil(until) => Some(until),
                            _ => None,
                        };
                        let id = match &waiting {
                            Some(w) => w.id,
                            None => {
                                let id = s.next_waiter;
                                s.next_waiter += 1;
                                s.waiters.push(Waiter {
                                    id,
                                    class,
                                    key: key.to_string(),
                                    wake: Arc::new(Notify::new()),
                                    woken: false,
                                });
                                waiting = Some(Waiting { gate: self, id });
                                id
                            }
                        };
                        let w = s
                            .waiters
                            .iter_mut()
                            .find(|w| w.id == id)
                            .expect("registered above");
                        w.woken = false;
                        (Arc::clone(&w.wake), until)
                    }
                }
            };
            match until {
                Some(until) => {
                    tokio::select! {
                        () = wake.notified() => {}
                        () = tokio::time::sleep_until(until) => {}
                    }
                }
                None => wake.notified().await,
            }
        }
    }
}

/// A registered waiter; leaving (cancelled, or failed fast) removes it and
/// passes on a wake-up it may have had.
struct Waiting<'a> {
    gate: &'a Gate,
    id: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut s = self.gate.lock();
        s.waiters.retain(|w| w.id != self.id);
        // Its leaving may free background work or a promised permit.
        self.gate.wake(&mut s);
    }
}

/// One request's permit; given back on drop.
#[derive(Debug)]
pub struct Permit<'a> {
    gate: &'a Gate,
    key: String,
    class: WorkClass,
    probe: bool,
    reported: bool,
}

impl Permit<'_> {
    /// Tells the gate how the attempt went (before the permit goes).
    pub fn report(mut self, report: Report) {
        self.reported = true;
        let gate = self.gate;
        let mut s = gate.lock();
        let now = Instant::now();
        if let Some(p) = s.providers.get_mut(&self.key) {
            if let Some(pause) = report.pause {
                let until = now + pause;
                p.paused_until = Some(p.paused_until.map_or(until, |u| u.max(until)));
            }
            if report.cut && p.last_cut.is_none_or(|at| now - at >= CUT_INTERVAL) {
                p.limit = (p.limit / 2.0).max(1.0);
                p.last_cut = Some(now);
                tracing::debug!(provider = %self.key, limit = p.allowed(), "provider throttles or stalls: fewer requests in flight");
            } else if report.answered && !report.cut {
                p.limit = (p.limit + 1.0).min(p.ceiling as f64);
            }
            if report.failed {
                let was_open = p.health.is_open();
                p.health.failed(now, &gate.thresholds);
                if p.health.is_open() && !was_open {
                    // The client says it in the log, with the cause.
                    tracing::debug!(provider = %self.key, "provider keeps failing: requests fail fast until a probe succeeds");
                }
            } else if report.answered {
                if p.health.is_open() {
                    tracing::info!(provider = %self.key, "provider answers again");
                }
                p.health.succeeded(&gate.thresholds);
            } else if self.probe {
                p.health.abandon_probe();
            }
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut s = self.gate.lock();
        match self.class {
            WorkClass::Live => s.live -= 1,
            WorkClass::Background => s.background -= 1,
        }
        if let Some(p) = s.providers.get_mut(&self.key) {
            p.in_flight -= 1;
            if self.probe && !self.reported {
                p.health.abandon_probe();
            }
        }
        self.gate.wake(&mut s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::TemplateProvider;

    fn provider(ceiling: usize) -> TemplateProvider {
        TemplateProvider::custom("http://127.0.0.1:9/{z}/{x}/{y}.jpg")
            .unwrap()
            .with_max_in_flight(ceiling)
    }

    fn gate(max_in_flight: usize, max_background: usize) -> Gate {
        Gate::new(&FetchConfig {
            max_in_flight,
            max_background,
            failures_to_trip: 3,
            failing_for: Duration::ZERO,
            probe_after: Duration::from_secs(2),
            ..FetchConfig::default()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn the_limit_halves_under_throttling_and_grows_back() {
        let g = gate(256, 64);
        let p = provider(64);
        assert_eq!(g.limit(&p), 64);
        let throttled = Report {
            cut: true,
            ..Report::default()
        };
        g.acquire(&p, WorkClass::Live)
            .await
            .unwrap()
            .report(throttled);
        assert_eq!(g.limit(&p), 32);
        // A second 429 of the same window does not cut again.
        g.acquire(&p, WorkClass::Live)
            .await
            .unwrap()
            .report(throttled);
        assert_eq!(g.limit(&p), 32);
        tokio::time::advance(CUT_INTERVAL).await;
        g.acquire(&p, WorkClass::Live)
            .await
            .unwrap()
            .report(throttled);
        assert_eq!(g.limit(&p), 16);
        // Only 16 permits now.
        let held: Vec<_> = {
            let mut v = Vec::new();
            for _ in 0..16 {
                v.push(g.acquire(&p, WorkClass::Live).await.unwrap());
            }
            v
        };
        let blocked = tokio::time::timeout(Duration::from_secs(1), g.acquire(&p, WorkClass::Live));
        assert!(blocked.await.is_err());
        let answered = Report {
            answered: true,
            ..Report::default()
        };
        for permit in held {
            permit.report(answered);
        }
        assert_eq!(g.limit(&p), 32);
        for _ in 0..100 {
            g.acquire(&p, WorkClass::Live)
                .await
                .unwrap()
                .report(answered);
        }
        assert_eq!(g.limit(&p), 64, "back to its ceiling, no further");
        assert_eq!(g.in_flight(), InFlight::default());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_provider_fails_fast_then_is_probed() {
        let g = gate(256, 64);
        let p = provider(8);
        let failed = Report {
            failed: true,
            ..Report::default()
        };
        for _ in 0..3 {
            g.acquire(&p, WorkClass::Live).await.unwrap().report(failed);
        }
        let err = g.acquire(&p, WorkClass::Live).await.unwrap_err();
        assert!(err.is_unavailable(), "{err}");
        assert!(g.is_failing(&p));
        tokio::time::advance(Duration::from_secs(2)).await;
        let probe = g.acquire(&p, WorkClass::Live).await.unwrap();
        assert!(g
            .acquire(&p, WorkClass::Live)
            .await
            .unwrap_err()
            .is_unavailable());
        probe.report(Report {
            answered: true,
            ..Report::default()
        });
        assert!(!g.is_failing(&p));
        drop(g.acquire(&p, WorkClass::Live).await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_pauses_the_provider() {
        let g = gate(256, 64);
        let p = provider(8);
        g.acquire(&p, WorkClass::Live)
            .await
            .unwrap()
            .report(Report {
                cut: true,
                pause: Some(Duration::from_secs(3)),
                ..Report::default()
            });
        let started = Instant::now();
        drop(g.acquire(&p, WorkClass::Live).await.unwrap());
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        // Longer than we wait: unavailable at once.
        g.acquire(&p, WorkClass::Live)
            .await
            .unwrap()
            .report(Report {
                pause: Some(Duration::from_secs(3600)),
                ..Report::default()
            });
        assert!(g
            .acquire(&p, WorkClass::Live)
            .await
            .unwrap_err()
            .is_unavailable());
    }

    #[tokio::test(start_paused = true)]
    async fn background_has_its_share_and_yields_to_live_work() {
        let g = gate(4, 2);
        let p = provider(64);
        let b1 = g.acquire(&p, WorkClass::Background).await.unwrap();
        let b2 = g.acquire(&p, WorkClass::Background).await.unwrap();
        let third =
            tokio::time::timeout(Duration::from_secs(1), g.acquire(&p, WorkClass::Background));
        assert!(third.await.is_err(), "background share is 2");
        let l1 = g.acquire(&p, WorkClass::Live).await.unwrap();
        let l2 = g.acquire(&p, WorkClass::Live).await.unwrap();
        // The pool is full; a live request waits, and a background one
        // queued behind it must not take the permit freed next.
        let g = &g;
        let live = async { g.acquire(&p, WorkClass::Live).await.map(|_| "live") };
        let background = async {
            tokio::task::yield_now().await;
            g.acquire(&p, WorkClass::Background)
                .await
                .map(|_| "background")
        };
        let free = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            drop(b1);
            std::future::pending::<Result<&str, FetchError>>().await
        };
        let first = tokio::select! {
            r = live => r.unwrap(),
            r = background => r.unwrap(),
            r = free => r.unwrap(),
        };
        assert_eq!(first, "live");
        drop((b2, l1, l2));
        assert_eq!(g.in_flight(), InFlight::default());
    }

    #[tokio::test(start_paused = true)]
    async fn cancelled_waits_and_downloads_give_everything_back() {
        let g = gate(1, 1);
        let p = provider(4);
        let held = g.acquire(&p, WorkClass::Live).await.unwrap();
        let waiting = tokio::time::timeout(Duration::from_secs(1), g.acquire(&p, WorkClass::Live));
        assert!(waiting.await.is_err());
        assert_eq!(g.in_flight().live_waiting, 0, "the cancelled wait is gone");
        drop(held);
        assert_eq!(g.in_flight(), InFlight::default());
        drop(g.acquire(&p, WorkClass::Background).await.unwrap());
        assert_eq!(g.in_flight(), InFlight::default());
    }
}
