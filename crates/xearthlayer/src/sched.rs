//! Two classes of work and the permits they share.
//!
//! *Live* work is what a reader (X-Plane) is waiting for now; *background*
//! work is what nobody waits for yet (read-ahead, prefetch). A
//! [`ClassedPermits`] pool hands out a bounded number of slots (build slots,
//! CPU slots) so that background work never delays live work: a free slot
//! goes to a waiting live request first, background requests may hold at
//! most their own share of the slots, and never take one while a live
//! request waits. Waiting is cancel-safe: a dropped request leaves the queue,
//! and a slot granted to it in the meantime is passed on at once.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

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
}

/// A bounded pool of slots with live requests served first.
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
    live_queue: VecDeque<Waiter>,
    background_queue: VecDeque<Waiter>,
}

#[derive(Debug)]
struct Waiter {
    ticket: u64,
    waker: Option<Waker>,
    granted: bool,
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
                    live_queue: VecDeque::new(),
                    background_queue: VecDeque::new(),
                }),
            }),
        }
    }

    /// Waits for a slot of `class`.
    pub fn acquire(&self, class: WorkClass) -> Acquire {
        Acquire {
            shared: Arc::clone(&self.shared),
            class,
            ticket: None,
            done: false,
        }
    }

    /// A slot now, or none; a background slot only if no live request waits.
    pub fn try_acquire(&self, class: WorkClass) -> Option<Permit> {
        let mut state = self.shared.lock();
        if state.can_grant(class) && state.queue(class).is_empty() {
            state.take(class);
            return Some(Permit {
                shared: Arc::clone(&self.shared),
                class,
            });
        }
        None
    }

    pub fn counts(&self) -> PermitCounts {
        let state = self.shared.lock();
        PermitCounts {
            live_held: state.live_held,
            background_held: state.background_held,
            live_waiting: state.live_queue.len(),
            background_waiting: state.background_queue.len(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.shared.lock().capacity
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a few counters and queues, updated whole under the lock.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn can_grant(&self, class: WorkClass) -> bool {
        self.free > 0
            && match class {
                WorkClass::Live => true,
                WorkClass::Background => {
                    self.live_queue.is_empty() && self.background_held < self.background_share
                }
            }
    }

    fn queue(&mut self, class: WorkClass) -> &mut VecDeque<Waiter> {
        match class {
            WorkClass::Live => &mut self.live_queue,
            WorkClass::Background => &mut self.background_queue,
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

    /// Grants free slots to the waiters at the heads of the queues, live first.
    fn dispatch(&mut self) {
        for class in [WorkClass::Live, WorkClass::Background] {
            while self.can_grant(class) {
                let Some(index) = self.queue(class).iter().position(|w| !w.granted) else {
                    break;
                };
                self.take(class);
                let waiter = &mut self.queue(class)[index];
                waiter.granted = true;
                if let Some(waker) = waiter.waker.take() {
                    waker.wake();
                }
            }
        }
    }
}

/// The future of [`ClassedPermits::acquire`].
#[derive(Debug)]
pub struct Acquire {
    shared: Arc<Shared>,
    class: WorkClass,
    ticket: Option<u64>,
    done: bool,
}

impl Future for Acquire {
    type Output = Permit;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Permit> {
        let class = self.class;
        let shared = Arc::clone(&self.shared);
        let mut state = shared.lock();
        match self.ticket {
            None => {
                if state.can_grant(class) && state.queue(class).is_empty() {
                    state.take(class);
                    self.done = true;
                    return Poll::Ready(Permit {
                        shared: Arc::clone(&shared),
                        class,
                    });
                }
                let ticket = state.next_ticket;
                state.next_ticket += 1;
                state.queue(class).push_back(Waiter {
                    ticket,
                    waker: Some(cx.waker().clone()),
                    granted: false,
                });
                self.ticket = Some(ticket);
                Poll::Pending
            }
            Some(ticket) => {
                let queue = state.queue(class);
                let index = queue
                    .iter()
                    .position(|w| w.ticket == ticket)
                    .expect("a waiting request stays queued until it is granted or dropped");
                if queue[index].granted {
                    queue.remove(index);
                    self.done = true;
                    self.ticket = None;
                    return Poll::Ready(Permit {
                        shared: Arc::clone(&shared),
                        class,
                    });
                }
                queue[index].waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for Acquire {
    fn drop(&mut self) {
        let Some(ticket) = self.ticket.take() else {
            return;
        };
        if self.done {
            return;
        }
        let mut state = self.shared.lock();
        let queue = state.queue(self.class);
        if let Some(index) = queue.iter().position(|w| w.ticket == ticket) {
            let waiter = queue.remove(index).expect("index is in the queue");
            if waiter.granted {
                state.give_back(self.class);
            } else {
                // Another waiter may now be first in line for a free slot.
                state.dispatch();
            }
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

    #[test]
    fn live_goes_first_and_background_keeps_to_its_share() {
        let pool = ClassedPermits::new(2, 1);
        let bg = pool
            .try_acquire(WorkClass::Background)
            .expect("a free slot");
        assert!(
            pool.try_acquire(WorkClass::Background).is_none(),
            "background holds at most its share"
        );
        let live = pool
            .try_acquire(WorkClass::Live)
            .expect("live takes the other slot");
        // Both slots held: a live and a background request queue.
        let mut waiting_bg = pool.acquire(WorkClass::Background);
        assert!((&mut waiting_bg).now_or_never().is_none());
        let mut waiting_live = pool.acquire(WorkClass::Live);
        assert!((&mut waiting_live).now_or_never().is_none());
        // The background slot freed goes to the live waiter, not the background one.
        drop(bg);
        let second_live = (&mut waiting_live).now_or_never().expect("granted");
        assert!((&mut waiting_bg).now_or_never().is_none());
        drop(live);
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
        let held = pool.try_acquire(WorkClass::Live).unwrap();
        let mut live = pool.acquire(WorkClass::Live);
        assert!((&mut live).now_or_never().is_none());
        assert!(pool.try_acquire(WorkClass::Background).is_none());
        drop(held);
        assert!(
            pool.try_acquire(WorkClass::Background).is_none(),
            "granted to live"
        );
        assert!(live.now_or_never().is_some());
    }

    #[test]
    fn a_dropped_request_passes_its_slot_on() {
        let pool = ClassedPermits::new(1, 1);
        let held = pool.try_acquire(WorkClass::Live).unwrap();
        let mut first = pool.acquire(WorkClass::Live);
        let mut second = pool.acquire(WorkClass::Live);
        assert!((&mut first).now_or_never().is_none());
        assert!((&mut second).now_or_never().is_none());
        drop(held);
        // Granted to `first`, which goes away without taking it.
        drop(first);
        assert!(second.now_or_never().is_some());
        assert_eq!(pool.counts(), PermitCounts::default());
    }

    #[tokio::test]
    async fn many_tasks_share_the_slots_and_give_them_all_back() {
        let pool = ClassedPermits::new(3, 1);
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let class = if i % 3 == 0 {
                        WorkClass::Background
                    } else {
                        WorkClass::Live
                    };
                    let _p = pool.acquire(class).await;
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
}
