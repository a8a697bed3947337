//! The one rule that orders all waiting work: *live* work (a reader waits
//! for it) before *background* work (read-ahead, prefetch), and live work
//! by the age of the oldest read that needs it, oldest first.
//!
//! On a link or a CPU that is the bottleneck, every read waits about as
//! long in all (Little's law), whatever the order; serving the oldest read
//! first makes reads finish one by one in the order they came, instead of
//! all together at the end, so none waits much longer than the queue
//! ahead of it.
//!
//! - [`Rank`] is that order, and [`WaitQueue`] keeps waiters in it with
//!   O(log n) insert, removal and first.
//! - [`ClassedPermits`] is a bounded pool of slots (build slots, CPU
//!   threads) granted in that order, where background work also keeps to
//!   its own share of the slots and never takes one while live work waits.
//!   The download gate ([`crate::fetch::gate`]) uses the same queue.
//!
//! Waiting is cancel-safe: a dropped request leaves the queue, and a slot
//! granted to it in the meantime is passed on at once. A request whose rank
//! changes (a reader joins background work, an older reader joins live
//! work) is dropped and asked again with its new rank.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::sync::watch;
use tokio::time::Instant;

/// Who waits for a piece of work: `None` while nobody does (background),
/// else when the oldest read that needs it started (its visit's start).
pub type Urgency = Option<Instant>;

/// Whose work it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkClass {
    /// A reader waits for it now.
    Live,
    /// Nobody waits for it yet: read-ahead, prefetch.
    Background,
}

impl WorkClass {
    pub fn name(self) -> &'static str {
        match self {
            WorkClass::Live => "live",
            WorkClass::Background => "background",
        }
    }

    /// The class of work with this urgency.
    pub fn of(urgency: Urgency) -> WorkClass {
        Rank::of(urgency).class()
    }
}

/// A waiter's place in line: live before background, live oldest first.
/// (The derived order compares variants first, then the instant.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rank {
    /// A read that started at this instant waits for it.
    Live(Instant),
    Background,
}

impl Rank {
    pub fn of(urgency: Urgency) -> Rank {
        urgency.map_or(Rank::Background, Rank::Live)
    }

    pub fn class(self) -> WorkClass {
        match self {
            Rank::Live(_) => WorkClass::Live,
            Rank::Background => WorkClass::Background,
        }
    }
}

/// A waiter's key in a [`WaitQueue`]: its rank, then its arrival.
pub type QueueKey = (Rank, u64);

/// Waiters in [`Rank`] order, ties by arrival. Every operation is
/// O(log n), so hundreds of reads leaving at once (a stalled provider)
/// cost little under the lock that holds the queue.
#[derive(Debug)]
pub struct WaitQueue<T> {
    waiters: BTreeMap<QueueKey, T>,
    live: usize,
}

impl<T> Default for WaitQueue<T> {
    fn default() -> Self {
        WaitQueue {
            waiters: BTreeMap::new(),
            live: 0,
        }
    }
}

impl<T> WaitQueue<T> {
    /// Queues `waiter` with the arrival number `ticket` (unique, rising).
    pub fn push(&mut self, rank: Rank, ticket: u64, waiter: T) -> QueueKey {
        let key = (rank, ticket);
        if rank.class() == WorkClass::Live {
            self.live += 1;
        }
        self.waiters.insert(key, waiter);
        key
    }

    pub fn remove(&mut self, key: &QueueKey) -> Option<T> {
        let waiter = self.waiters.remove(key)?;
        if key.0.class() == WorkClass::Live {
            self.live -= 1;
        }
        Some(waiter)
    }

    /// The waiter served next.
    pub fn first(&self) -> Option<(&QueueKey, &T)> {
        self.waiters.first_key_value()
    }

    pub fn pop_first(&mut self) -> Option<(QueueKey, T)> {
        let (key, waiter) = self.waiters.pop_first()?;
        if key.0.class() == WorkClass::Live {
            self.live -= 1;
        }
        Some((key, waiter))
    }

    pub fn get_mut(&mut self, key: &QueueKey) -> Option<&mut T> {
        self.waiters.get_mut(key)
    }

    pub fn live_len(&self) -> usize {
        self.live
    }

    pub fn background_len(&self) -> usize {
        self.waiters.len() - self.live
    }

    /// Every waiter, in order (for failing them all at once).
    pub fn drain(&mut self) -> impl Iterator<Item = (QueueKey, T)> {
        self.live = 0;
        std::mem::take(&mut self.waiters).into_iter()
    }
}

/// Waits for the next permit of `acquire(rank)` while `urgency` may change:
/// a request whose rank changes leaves the queue and asks again with its
/// new rank (cancel-safe acquires make that free).
pub async fn acquire_ranked<P, F, Fut>(urgency: &mut watch::Receiver<Urgency>, acquire: F) -> P
where
    F: Fn(Rank) -> Fut,
    Fut: Future<Output = P>,
{
    loop {
        let rank = Rank::of(*urgency.borrow_and_update());
        tokio::select! {
            permit = acquire(rank) => return permit,
            changed = urgency.changed() => {
                if changed.is_err() {
                    // Nobody can change it any more: wait as we are.
                    return acquire(rank).await;
                }
            }
        }
    }
}

/// A bounded pool of slots granted in [`Rank`] order.
#[derive(Debug, Clone)]
pub struct ClassedPermits {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    free: usize,
    capacity: usize,
    background_share: usize,
    background_held: usize,
    live_held: usize,
    next_ticket: u64,
    queue: WaitQueue<Waker>,
    /// Tickets granted a slot and not yet polled for it.
    granted: HashSet<u64>,
}

/// How many slots each class holds and wants now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PermitCounts {
    pub live_held: usize,
    pub background_held: usize,
    pub live_waiting: usize,
    pub background_waiting: usize,
}

impl ClassedPermits {
    /// `capacity` slots in all, of which background work holds at most
    /// `background_share` (at least one, at most `capacity`).
    pub fn new(capacity: usize, background_share: usize) -> Self {
        let capacity = capacity.max(1);
        ClassedPermits {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    free: capacity,
                    capacity,
                    background_share: background_share.clamp(1, capacity),
                    background_held: 0,
                    live_held: 0,
                    next_ticket: 0,
                    queue: WaitQueue::default(),
                    granted: HashSet::new(),
                }),
            }),
        }
    }

    /// Waits for a slot, in line by `rank`.
    pub fn acquire(&self, rank: Rank) -> Acquire {
        Acquire {
            shared: Arc::clone(&self.shared),
            rank,
            key: None,
        }
    }

    /// Waits for a slot in line by `urgency`, moving in line when it changes.
    pub async fn acquire_as(&self, urgency: &mut watch::Receiver<Urgency>) -> Permit {
        acquire_ranked(urgency, |rank| self.acquire(rank)).await
    }

    /// A slot now, or none; only if nobody ahead of `rank` waits.
    pub fn try_acquire(&self, rank: Rank) -> Option<Permit> {
        let mut state = self.shared.lock();
        let nobody_ahead = state.queue.first().is_none_or(|(key, _)| key.0 > rank);
        if nobody_ahead && state.can_grant(rank.class()) {
            state.take(rank.class());
            return Some(Permit {
                shared: Arc::clone(&self.shared),
                class: rank.class(),
            });
        }
        None
    }

    pub fn counts(&self) -> PermitCounts {
        let state = self.shared.lock();
        PermitCounts {
            live_held: state.live_held,
            background_held: state.background_held,
            live_waiting: state.queue.live_len(),
            background_waiting: state.queue.background_len(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.shared.lock().capacity
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a few counters and a queue, updated whole under the lock.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn can_grant(&self, class: WorkClass) -> bool {
        self.free > 0
            && match class {
                WorkClass::Live => true,
                WorkClass::Background => {
                    self.queue.live_len() == 0 && self.background_held < self.background_share
                }
            }
    }

    fn take(&mut self, class: WorkClass) {
        self.free -= 1;
        match class {
            WorkClass::Live => self.live_held += 1,
            WorkClass::Background => self.background_held += 1,
        }
    }

    fn give_back(&mut self, class: WorkClass) {
        self.free += 1;
        match class {
            WorkClass::Live => self.live_held -= 1,
            WorkClass::Background => self.background_held -= 1,
        }
        self.dispatch();
    }

    /// Grants free slots to the first waiters in line.
    fn dispatch(&mut self) {
        while let Some((&(rank, ticket), _)) = self.queue.first() {
            // The first waiter's class is the best there is: if it cannot
            // have a slot, nobody behind it can.
            if !self.can_grant_first(rank.class()) {
                break;
            }
            let (_, waker) = self.queue.pop_first().expect("looked at it above");
            self.take(rank.class());
            self.granted.insert(ticket);
            waker.wake();
        }
    }

    /// [`can_grant`](Self::can_grant) for the first waiter in line, which
    /// is not held back by itself.
    fn can_grant_first(&self, class: WorkClass) -> bool {
        self.free > 0 && (class == WorkClass::Live || self.background_held < self.background_share)
    }
}

/// The future of [`ClassedPermits::acquire`].
#[derive(Debug)]
pub struct Acquire {
    shared: Arc<Shared>,
    rank: Rank,
    key: Option<QueueKey>,
}

impl Future for Acquire {
    type Output = Permit;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Permit> {
        let class = self.rank.class();
        let shared = Arc::clone(&self.shared);
        let mut state = shared.lock();
        let permit = || Permit {
            shared: Arc::clone(&shared),
            class,
        };
        match self.key {
            None => {
                let nobody_ahead = state.queue.first().is_none_or(|(key, _)| key.0 > self.rank);
                if nobody_ahead && state.can_grant(class) {
                    state.take(class);
                    return Poll::Ready(permit());
                }
                let ticket = state.next_ticket;
                state.next_ticket += 1;
                let key = state.queue.push(self.rank, ticket, cx.waker().clone());
                self.key = Some(key);
                // A newcomer ahead of background waiters may change nothing,
                // but one behind a free slot must not be left waiting.
                state.dispatch();
                if state.granted.remove(&ticket) {
                    self.key = None;
                    return Poll::Ready(permit());
                }
                Poll::Pending
            }
            Some(key) => {
                if state.granted.remove(&key.1) {
                    self.key = None;
                    return Poll::Ready(permit());
                }
                if let Some(waker) = state.queue.get_mut(&key) {
                    waker.clone_from(cx.waker());
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Acquire {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        let mut state = self.shared.lock();
        if state.granted.remove(&key.1) {
            state.give_back(key.0.class());
        } else if state.queue.remove(&key).is_some() {
            // A live waiter leaving may let background work go.
            state.dispatch();
        }
    }
}

/// A held slot; dropping it gives the slot back.
#[derive(Debug)]
pub struct Permit {
    shared: Arc<Shared>,
    class: WorkClass,
}

impl Permit {
    pub fn class(&self) -> WorkClass {
        self.class
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.shared.lock().give_back(self.class);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use std::time::Duration;

    fn live(age_ms: u64) -> Rank {
        // Older reads started earlier: a larger age is an earlier instant.
        Rank::Live(Instant::now() - Duration::from_millis(age_ms))
    }

    #[test]
    fn live_goes_first_and_background_keeps_to_its_share() {
        let pool = ClassedPermits::new(2, 1);
        let bg = pool.try_acquire(Rank::Background).expect("a free slot");
        assert!(
            pool.try_acquire(Rank::Background).is_none(),
            "background holds at most its share"
        );
        let held = pool
            .try_acquire(live(0))
            .expect("live takes the other slot");
        // Both slots held: a live and a background request queue.
        let mut waiting_bg = pool.acquire(Rank::Background);
        assert!((&mut waiting_bg).now_or_never().is_none());
        let mut waiting_live = pool.acquire(live(0));
        assert!((&mut waiting_live).now_or_never().is_none());
        // The background slot freed goes to the live waiter, not the background one.
        drop(bg);
        let second_live = (&mut waiting_live).now_or_never().expect("granted");
        assert!((&mut waiting_bg).now_or_never().is_none());
        drop(held);
        let bg_again = (&mut waiting_bg).now_or_never().expect("no live waits now");
        assert_eq!(
            pool.counts(),
            PermitCounts {
                live_held: 1,
                background_held: 1,
                live_waiting: 0,
                background_waiting: 0
            }
        );
        drop((second_live, bg_again));
        assert_eq!(pool.counts(), PermitCounts::default());
    }

    #[test]
    fn background_never_takes_a_slot_while_live_waits() {
        let pool = ClassedPermits::new(1, 1);
        let held = pool.try_acquire(live(0)).unwrap();
        let mut waiting = pool.acquire(live(0));
        assert!((&mut waiting).now_or_never().is_none());
        assert!(pool.try_acquire(Rank::Background).is_none());
        drop(held);
        assert!(
            pool.try_acquire(Rank::Background).is_none(),
            "granted to live"
        );
        assert!(waiting.now_or_never().is_some());
    }

    #[test]
    fn the_oldest_read_goes_first_whatever_the_order_of_asking() {
        let pool = ClassedPermits::new(1, 1);
        let held = pool.try_acquire(live(0)).unwrap();
        // Asked in the order young, background, old, middle.
        let mut young = pool.acquire(live(10));
        let mut background = pool.acquire(Rank::Background);
        let mut old = pool.acquire(live(3000));
        let mut middle = pool.acquire(live(500));
        for waiting in [&mut young, &mut background, &mut old, &mut middle] {
            assert!(waiting.now_or_never().is_none());
        }
        drop(held);
        let first = (&mut old).now_or_never().expect("the oldest first");
        assert!((&mut middle).now_or_never().is_none());
        drop(first);
        let second = (&mut middle).now_or_never().expect("then the middle one");
        assert!((&mut young).now_or_never().is_none());
        drop(second);
        let third = (&mut young).now_or_never().expect("then the youngest");
        assert!((&mut background).now_or_never().is_none());
        drop(third);
        assert!(background.now_or_never().is_some(), "background last");
    }

    #[test]
    fn a_dropped_request_passes_its_slot_on() {
        let pool = ClassedPermits::new(1, 1);
        let held = pool.try_acquire(live(0)).unwrap();
        let mut first = pool.acquire(live(50));
        let mut second = pool.acquire(live(0));
        assert!((&mut first).now_or_never().is_none());
        assert!((&mut second).now_or_never().is_none());
        drop(held);
        // Granted to `first`, which goes away without taking it.
        drop(first);
        assert!(second.now_or_never().is_some());
        assert_eq!(pool.counts(), PermitCounts::default());
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_whose_reader_is_older_moves_up_the_line() {
        let pool = ClassedPermits::new(1, 1);
        let held = pool.try_acquire(live(0)).unwrap();
        let now = Instant::now();
        let (_keep, mut ahead) = watch::channel(Some(now - Duration::from_secs(1)));
        let (promote, mut behind) = watch::channel(None);
        let first = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.acquire_as(&mut ahead).await })
        };
        let second = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.acquire_as(&mut behind).await })
        };
        tokio::task::yield_now().await;
        assert_eq!(pool.counts().live_waiting, 1);
        assert_eq!(pool.counts().background_waiting, 1);
        // An older reader joins the background request: it goes first now.
        promote.send_replace(Some(now - Duration::from_secs(5)));
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(pool.counts().live_waiting, 2);
        drop(held);
        let granted = second.await.unwrap();
        assert_eq!(granted.class(), WorkClass::Live);
        assert!(!first.is_finished(), "the younger reader waits");
        drop(granted);
        drop(first.await.unwrap());
        assert_eq!(pool.counts(), PermitCounts::default());
    }

    #[tokio::test]
    async fn many_tasks_share_the_slots_and_give_them_all_back() {
        let pool = ClassedPermits::new(3, 1);
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let rank = if i % 3 == 0 {
                        Rank::Background
                    } else {
                        live(i)
                    };
                    let _p = pool.acquire(rank).await;
                    let counts = pool.counts();
                    assert!(counts.live_held + counts.background_held <= 3);
                    assert!(counts.background_held <= 1);
                    tokio::task::yield_now().await;
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(pool.counts(), PermitCounts::default());
    }

    #[test]
    fn the_queue_orders_by_rank_then_arrival() {
        let mut queue = WaitQueue::default();
        let t0 = Instant::now();
        queue.push(Rank::Background, 0, "bg");
        queue.push(Rank::Live(t0 + Duration::from_secs(1)), 1, "young");
        queue.push(Rank::Live(t0), 2, "old");
        let same_age = queue.push(Rank::Live(t0), 3, "old, later");
        assert_eq!((queue.live_len(), queue.background_len()), (3, 1));
        assert_eq!(queue.remove(&same_age), Some("old, later"));
        let order: Vec<_> = std::iter::from_fn(|| queue.pop_first().map(|(_, w)| w)).collect();
        assert_eq!(order, ["old", "young", "bg"]);
        assert_eq!(queue.live_len(), 0);
    }
}
