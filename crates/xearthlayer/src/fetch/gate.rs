//! The download permits. One lock guards all the counts, so a permit is
//! taken against the global bound, the class's share and the provider's
//! limit at once:
//!
//! - at most `max_in_flight` requests in flight in all, granted in
//!   [`Rank`] order (live before background, the oldest read first)
//!   across every provider;
//! - background requests at most `max_background`, and none taken while a
//!   live request waits for a permit;
//! - per provider, an adaptive limit between 1 and the provider's own
//!   ceiling: halved (at most once a second) when it throttles or stalls,
//!   one more per answer, so it is back up quickly once it answers;
//! - per provider, a pause its `Retry-After` asked for, and its
//!   [`Health`]: while the circuit is open a request fails at once.
//!
//! The gate also knows whether each provider is *moving*: when it last
//! answered while it had requests in flight, and how long its answers
//! take. Readers use the first to tell a provider that stalled from one
//! that is merely busy; the client uses the second to be as patient with
//! a request as the provider's answers are slow (a slow link is not a
//! failing provider).
//!
//! Waiters queue per provider in a [`WaitQueue`] (O(log n) each way); a
//! release looks at the first waiter of each provider only. A [`Permit`]
//! gives itself back when dropped, also when its download is cancelled;
//! waiting is cancel-safe too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::health::{Admit, Health, Thresholds};
use super::{FetchConfig, FetchError, WorkClass};
use crate::provider::TileProvider;
use crate::sched::{QueueKey, Rank, WaitQueue};

/// Cuts of one provider's limit closer together than this count once: the
/// replies of one window of requests say the same thing.
const CUT_INTERVAL: Duration = Duration::from_secs(1);
/// A request waits for its answer this many times the provider's typical
/// answer time before it counts as stalled.
const PATIENCE_FACTOR: u32 = 4;
/// The most that patience grows to.
const MAX_PATIENCE: Duration = Duration::from_secs(60);
/// Weight of the newest answer time in the running average.
const ANSWER_TIME_WEIGHT: f64 = 0.2;

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
    /// How long the answer took, from sending to the whole body.
    pub took: Option<Duration>,
}

/// How a provider is doing, as readers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Motion {
    /// Its circuit is open: requests fail fast.
    pub failing: bool,
    /// How long it has had requests in flight without answering any
    /// (zero when idle).
    pub silent_for: Duration,
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
    queue: WaitQueue<Waiter>,
    /// Since when it has had requests in flight (none: idle).
    busy_since: Option<Instant>,
    last_answer: Option<Instant>,
    /// Running average of its answers' times, in seconds.
    answer_secs: f64,
}

impl ProviderState {
    fn allowed(&self) -> usize {
        (self.limit as usize).clamp(1, self.ceiling)
    }

    fn set_in_flight(&mut self, in_flight: usize, now: Instant) {
        self.in_flight = in_flight;
        if in_flight == 0 {
            self.busy_since = None;
        } else {
            self.busy_since.get_or_insert(now);
        }
    }
}

/// A request waiting for a permit; the dispatcher grants it (or fails it)
/// and wakes it once.
#[derive(Debug)]
struct Waiter {
    id: u64,
    wake: Arc<Notify>,
}

/// What a waiter was given.
type Grant = Result<Admit, &'static str>;

#[derive(Debug, Default)]
struct State {
    live: usize,
    background: usize,
    next_waiter: u64,
    providers: HashMap<String, ProviderState>,
    /// Waiters granted (or failed) and not yet back for it, by id.
    granted: HashMap<u64, Grant>,
}

impl State {
    fn live_waiting(&self) -> usize {
        self.providers.values().map(|p| p.queue.live_len()).sum()
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

/// What a request may do now, ignoring who waits ahead of it.
enum Step {
    Take(Admit),
    Wait,
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

    /// Whether the provider is answering the requests it has in flight.
    pub fn motion(&self, provider: &dyn TileProvider) -> Motion {
        let s = self.lock();
        let Some(p) = s.providers.get(provider.cache_key()) else {
            return Motion {
                failing: false,
                silent_for: Duration::ZERO,
            };
        };
        let silent_for = p.busy_since.map_or(Duration::ZERO, |busy| {
            let moved = p.last_answer.map_or(busy, |answer| answer.max(busy));
            moved.elapsed()
        });
        Motion {
            failing: p.health.is_open(),
            silent_for,
        }
    }

    /// How long a request to the provider may take before it counts as
    /// stalled: `base`, or more when its answers are slow (a link that
    /// is busy delivers every answer late, none of them stalled).
    pub fn patience(&self, provider: &dyn TileProvider, base: Duration) -> Duration {
        let typical = self
            .lock()
            .providers
            .get(provider.cache_key())
            .map_or(0.0, |p| p.answer_secs);
        let patient = Duration::from_secs_f64(typical) * PATIENCE_FACTOR;
        base.max(patient.min(MAX_PATIENCE))
    }

    /// What a request of `class` to `p` may do now, given the counts.
    fn step(&self, s: &State, p: &ProviderState, class: WorkClass, now: Instant) -> Step {
        let admit = p.health.admit(now);
        if admit == Admit::No {
            return Step::Fail("it keeps failing; it is probed again later");
        }
        if let Some(until) = p.paused_until.filter(|&until| until > now) {
            if until - now > self.max_pause {
                return Step::Fail("it asked for a pause longer than we wait");
            }
            return Step::Wait;
        }
        let pool = s.live + s.background < self.max_in_flight;
        let share = match class {
            WorkClass::Live => true,
            WorkClass::Background => s.background < self.max_background && s.live_waiting() == 0,
        };
        let own = match admit {
            Admit::Probe => p.in_flight == 0,
            _ => p.in_flight < p.allowed(),
        };
        if pool && share && own {
            Step::Take(admit)
        } else {
            Step::Wait
        }
    }

    /// Grants free permits to the first waiters in [`Rank`] order across
    /// providers, and fails at once the waiters of a provider that fails
    /// fast. Each grant looks at one waiter per provider.
    fn dispatch(&self, s: &mut State) {
        let now = Instant::now();
        loop {
            let mut best: Option<(QueueKey, String, Admit)> = None;
            let mut failing: Vec<(String, &'static str)> = Vec::new();
            for (name, p) in &s.providers {
                let Some((&key, _)) = p.queue.first() else {
                    continue;
                };
                match self.step(s, p, key.0.class(), now) {
                    Step::Fail(why) => failing.push((name.clone(), why)),
                    Step::Take(admit) => {
                        if best.as_ref().is_none_or(|(b, _, _)| key < *b) {
                            best = Some((key, name.clone(), admit));
                        }
                    }
                    Step::Wait => {}
                }
            }
            for (name, why) in failing {
                let p = s.providers.get_mut(&name).expect("listed above");
                for (_, waiter) in p.queue.drain() {
                    s.granted.insert(waiter.id, Err(why));
                    waiter.wake.notify_one();
                }
            }
            let Some((key, name, admit)) = best else {
                return;
            };
            let p = s.providers.get_mut(&name).expect("listed above");
            let waiter = p.queue.remove(&key).expect("first in its queue");
            p.set_in_flight(p.in_flight + 1, now);
            if admit == Admit::Probe {
                p.health.start_probe();
            }
            match key.0.class() {
                WorkClass::Live => s.live += 1,
                WorkClass::Background => s.background += 1,
            }
            s.granted.insert(waiter.id, Ok(admit));
            waiter.wake.notify_one();
        }
    }

    fn provider_state<'s>(
        &self,
        s: &'s mut State,
        provider: &dyn TileProvider,
    ) -> &'s mut ProviderState {
        let ceiling = provider.max_in_flight().clamp(1, self.max_in_flight);
        s.providers
            .entry(provider.cache_key().to_string())
            .or_insert_with(|| ProviderState {
                in_flight: 0,
                ceiling,
                limit: ceiling as f64,
                last_cut: None,
                paused_until: None,
                health: Health::new(&self.thresholds),
                queue: WaitQueue::default(),
                busy_since: None,
                last_answer: None,
                answer_secs: 0.0,
            })
    }

    /// A permit of `class` to `provider` is back; a probe that went away
    /// unanswered lets the next request probe instead.
    fn give_back(&self, s: &mut State, provider: &str, class: WorkClass, abandoned_probe: bool) {
        match class {
            WorkClass::Live => s.live -= 1,
            WorkClass::Background => s.background -= 1,
        }
        if let Some(p) = s.providers.get_mut(provider) {
            p.set_in_flight(p.in_flight - 1, Instant::now());
            if abandoned_probe {
                p.health.abandon_probe();
            }
        }
        self.dispatch(s);
    }

    /// Waits for a permit, in line by `rank`; fails at once when the
    /// provider is failing or has asked for a pause longer than we wait.
    pub async fn acquire(
        &self,
        provider: &dyn TileProvider,
        rank: Rank,
    ) -> Result<Permit<'_>, FetchError> {
        let key = provider.cache_key();
        let unavailable = |why| FetchError::Unavailable {
            provider: provider.name().to_string(),
            why,
        };
        let (waiting, wake) = {
            let mut s = self.lock();
            let id = s.next_waiter;
            s.next_waiter += 1;
            let wake = Arc::new(Notify::new());
            let p = self.provider_state(&mut s, provider);
            let queued = p.queue.push(
                rank,
                id,
                Waiter {
                    id,
                    wake: Arc::clone(&wake),
                },
            );
            self.dispatch(&mut s);
            let waiting = Waiting {
                gate: self,
                provider: key.to_string(),
                queued,
                id,
            };
            (waiting, wake)
        };
        loop {
            let paused_until = {
                let mut s = self.lock();
                if let Some(grant) = s.granted.remove(&waiting.id) {
                    std::mem::forget(waiting);
                    return match grant {
                        Ok(admit) => Ok(Permit {
                            gate: self,
                            key: key.to_string(),
                            class: rank.class(),
                            probe: admit == Admit::Probe,
                            reported: false,
                        }),
                        Err(why) => Err(unavailable(why)),
                    };
                }
                s.providers.get(key).and_then(|p| p.paused_until)
            };
            match paused_until {
                Some(until) => {
                    tokio::select! {
                        () = wake.notified() => {}
                        () = tokio::time::sleep_until(until) => self.dispatch(&mut self.lock()),
                    }
                }
                None => wake.notified().await,
            }
        }
    }
}

/// A queued waiter; leaving (cancelled) takes it out of line, or gives back
/// a permit it was granted meanwhile.
struct Waiting<'a> {
    gate: &'a Gate,
    provider: String,
    queued: QueueKey,
    id: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut s = self.gate.lock();
        match s.granted.remove(&self.id) {
            // Granted but never taken: give it back as its permit would.
            Some(Ok(admit)) => {
                let probe = admit == Admit::Probe;
                self.gate
                    .give_back(&mut s, &self.provider, self.queued.0.class(), probe);
            }
            Some(Err(_)) => {}
            None => {
                if let Some(p) = s.providers.get_mut(&self.provider) {
                    p.queue.remove(&self.queued);
                }
                // A live waiter leaving may let background work go.
                self.gate.dispatch(&mut s);
            }
        }
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
    /// The class it was granted to (work promoted later keeps it).
    pub fn class(&self) -> WorkClass {
        self.class
    }

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
            if report.answered {
                p.last_answer = Some(now);
                if let Some(took) = report.took {
                    let took = took.as_secs_f64();
                    p.answer_secs += (took - p.answer_secs) * ANSWER_TIME_WEIGHT;
                }
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
        let gate = self.gate;
        let mut s = gate.lock();
        let abandoned_probe = self.probe && !self.reported;
        gate.give_back(&mut s, &self.key, self.class, abandoned_probe);
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

    fn live() -> Rank {
        Rank::Live(Instant::now())
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
        g.acquire(&p, live()).await.unwrap().report(throttled);
        assert_eq!(g.limit(&p), 32);
        // A second 429 of the same window does not cut again.
        g.acquire(&p, live()).await.unwrap().report(throttled);
        assert_eq!(g.limit(&p), 32);
        tokio::time::advance(CUT_INTERVAL).await;
        g.acquire(&p, live()).await.unwrap().report(throttled);
        assert_eq!(g.limit(&p), 16);
        // Only 16 permits now.
        let held: Vec<_> = {
            let mut v = Vec::new();
            for _ in 0..16 {
                v.push(g.acquire(&p, live()).await.unwrap());
            }
            v
        };
        let blocked = tokio::time::timeout(Duration::from_secs(1), g.acquire(&p, live()));
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
            g.acquire(&p, live()).await.unwrap().report(answered);
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
            g.acquire(&p, live()).await.unwrap().report(failed);
        }
        let err = g.acquire(&p, live()).await.unwrap_err();
        assert!(err.is_unavailable(), "{err}");
        assert!(g.is_failing(&p));
        tokio::time::advance(Duration::from_secs(2)).await;
        let probe = g.acquire(&p, live()).await.unwrap();
        assert!(g.acquire(&p, live()).await.unwrap_err().is_unavailable());
        probe.report(Report {
            answered: true,
            ..Report::default()
        });
        assert!(!g.is_failing(&p));
        drop(g.acquire(&p, live()).await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_pauses_the_provider() {
        let g = gate(256, 64);
        let p = provider(8);
        g.acquire(&p, live()).await.unwrap().report(Report {
            cut: true,
            pause: Some(Duration::from_secs(3)),
            ..Report::default()
        });
        let started = Instant::now();
        drop(g.acquire(&p, live()).await.unwrap());
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        // Longer than we wait: unavailable at once.
        g.acquire(&p, live()).await.unwrap().report(Report {
            pause: Some(Duration::from_secs(3600)),
            ..Report::default()
        });
        assert!(g.acquire(&p, live()).await.unwrap_err().is_unavailable());
    }

    #[tokio::test(start_paused = true)]
    async fn background_has_its_share_and_yields_to_live_work() {
        let g = gate(4, 2);
        let p = provider(64);
        let b1 = g.acquire(&p, Rank::Background).await.unwrap();
        let b2 = g.acquire(&p, Rank::Background).await.unwrap();
        let third = tokio::time::timeout(Duration::from_secs(1), g.acquire(&p, Rank::Background));
        assert!(third.await.is_err(), "background share is 2");
        let l1 = g.acquire(&p, live()).await.unwrap();
        let l2 = g.acquire(&p, live()).await.unwrap();
        // The pool is full; a live request waits, and a background one
        // queued behind it must not take the permit freed next.
        let g = &g;
        let live = async { g.acquire(&p, live()).await.map(|_| "live") };
        let background = async {
            tokio::task::yield_now().await;
            g.acquire(&p, Rank::Background).await.map(|_| "background")
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
        let held = g.acquire(&p, live()).await.unwrap();
        let waiting = tokio::time::timeout(Duration::from_secs(1), g.acquire(&p, live()));
        assert!(waiting.await.is_err());
        assert_eq!(g.in_flight().live_waiting, 0, "the cancelled wait is gone");
        drop(held);
        assert_eq!(g.in_flight(), InFlight::default());
        drop(g.acquire(&p, Rank::Background).await.unwrap());
        assert_eq!(g.in_flight(), InFlight::default());
    }

    #[tokio::test(start_paused = true)]
    async fn permits_go_to_the_oldest_read_across_providers() {
        let g = gate(1, 1);
        let a = provider(8);
        let b = TemplateProvider::from_template("other", "http://127.0.0.1:9/{z}/{x}/{y}.jpg")
            .unwrap()
            .with_max_in_flight(8);
        let held = g.acquire(&a, live()).await.unwrap();
        let t0 = Instant::now();
        let ranks = [
            ("young", &b, Rank::Live(t0)),
            ("background", &a, Rank::Background),
            ("old", &b, Rank::Live(t0 - Duration::from_secs(9))),
            ("middle", &a, Rank::Live(t0 - Duration::from_secs(3))),
        ];
        let order = Arc::new(Mutex::new(Vec::new()));
        let g = &g;
        let waits = ranks.iter().map(|(name, p, rank)| {
            let order = Arc::clone(&order);
            async move {
                let permit = g.acquire(*p, *rank).await.unwrap();
                order.lock().unwrap().push(*name);
                tokio::time::sleep(Duration::from_millis(10)).await;
                drop(permit);
            }
        });
        let all = futures_util::future::join_all(waits);
        let release = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            drop(held);
        };
        tokio::join!(all, release);
        assert_eq!(
            *order.lock().unwrap(),
            ["old", "middle", "young", "background"]
        );
        assert_eq!(g.in_flight(), InFlight::default());
    }

    #[tokio::test(start_paused = true)]
    async fn a_provider_is_silent_only_while_it_has_requests_unanswered() {
        let g = gate(8, 4);
        let p = provider(8);
        assert_eq!(g.motion(&p).silent_for, Duration::ZERO, "idle");
        let first = g.acquire(&p, live()).await.unwrap();
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(g.motion(&p).silent_for, Duration::from_secs(3));
        let second = g.acquire(&p, live()).await.unwrap();
        first.report(Report {
            answered: true,
            took: Some(Duration::from_secs(3)),
            ..Report::default()
        });
        assert_eq!(g.motion(&p).silent_for, Duration::ZERO, "it answered");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(g.motion(&p).silent_for, Duration::from_secs(2));
        drop(second);
        assert_eq!(g.motion(&p).silent_for, Duration::ZERO, "idle again");
        assert!(!g.motion(&p).failing);
    }

    #[tokio::test(start_paused = true)]
    async fn patience_grows_with_the_providers_answer_times() {
        let g = gate(8, 4);
        let p = provider(8);
        let base = Duration::from_secs(5);
        assert_eq!(g.patience(&p, base), base);
        for _ in 0..30 {
            g.acquire(&p, live()).await.unwrap().report(Report {
                answered: true,
                took: Some(Duration::from_secs(4)),
                ..Report::default()
            });
        }
        let patience = g.patience(&p, base);
        assert!(
            patience > Duration::from_secs(15) && patience <= Duration::from_secs(16),
            "four times the typical 4 s: {patience:?}"
        );
        for _ in 0..30 {
            g.acquire(&p, live()).await.unwrap().report(Report {
                answered: true,
                took: Some(Duration::from_secs(600)),
                ..Report::default()
            });
        }
        assert_eq!(g.patience(&p, base), MAX_PATIENCE);
    }
}
