//! Work done once for everyone who wants it, and cancelled when nobody does.
//!
//! A [`SharedWork`] map starts each piece of work (a unit build, a chunk
//! download) as its own task the first time it is asked for, and hands every
//! caller a [`Claim`] on it. The claims own the work: when the last one is
//! dropped (its readers got their answer elsewhere, or gave up waiting)
//! the task is aborted and gives back whatever it holds (a download permit,
//! a connection, a build slot). A task that panics or is aborted resolves
//! its claims with [`Abandoned`], so nobody waits on it forever.
//!
//! Each piece of work carries its *urgency*: `None` while only background
//! work wants it, else when the oldest live read that wants it started.
//! The work watches it, so a prefetch that a reader joins becomes live
//! work, and live work moves up the line when an older read joins.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

pub use crate::sched::Urgency;

/// The work ended without a result (it panicked or was aborted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the shared work ended without a result")]
pub struct Abandoned;

struct Slot<V> {
    id: u64,
    result: watch::Receiver<Option<V>>,
    urgency: watch::Sender<Urgency>,
    abort: AbortHandle,
}

impl<V> Drop for Slot<V> {
    fn drop(&mut self) {
        // The last claim is gone: nobody wants the result any more.
        self.abort.abort();
    }
}

/// One caller's hold on a piece of shared work.
pub struct Claim<V> {
    slot: Arc<Slot<V>>,
}

impl<V: Clone> Claim<V> {
    /// The result, once the work is done.
    pub async fn wait(&self) -> Result<V, Abandoned> {
        let mut result = self.slot.result.clone();
        let done = result
            .wait_for(Option::is_some)
            .await
            .map_err(|_| Abandoned)?;
        Ok(done.clone().expect("waited for a result"))
    }

    /// Says a read that started at `since` waits for it (makes
    /// background work live, and moves live work up for an older read).
    pub fn hurry(&self, since: Instant) {
        hurry(&self.slot.urgency, Some(since));
    }
}

fn hurry(urgency: &watch::Sender<Urgency>, wanted: Urgency) {
    let Some(since) = wanted else { return };
    urgency.send_if_modified(|current| match current {
        Some(oldest) if *oldest <= since => false,
        _ => {
            *current = Some(since);
            true
        }
    });
}

type Slots<K, V> = Mutex<HashMap<K, Weak<Slot<V>>>>;

/// Work by key, each piece running once however many callers want it.
pub struct SharedWork<K, V> {
    slots: Arc<Slots<K, V>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl<K, V> Default for SharedWork<K, V> {
    fn default() -> Self {
        SharedWork {
            slots: Arc::default(),
            next_id: Default::default(),
        }
    }
}

impl<K, V> std::fmt::Debug for SharedWork<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedWork")
            .field("slots", &lock(&self.slots).len())
            .finish()
    }
}

impl<K, V> SharedWork<K, V>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A claim on the work for `key`, starting it with `start` (given the
    /// urgency to watch) if it is not running.
    pub fn claim<F, Fut>(&self, key: K, urgency: Urgency, start: F) -> Claim<V>
    where
        F: FnOnce(watch::Receiver<Urgency>) -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        let mut slots = lock(&self.slots);
        if let Some(slot) = slots.get(&key).and_then(Weak::upgrade) {
            // A slot whose task ended without a result is not reused.
            if slot.result.has_changed().is_ok() {
                hurry(&slot.urgency, urgency);
                return Claim { slot };
            }
        }
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (urgency_tx, urgency_rx) = watch::channel(urgency);
        let (result_tx, result_rx) = watch::channel(None);
        let work = start(urgency_rx);
        let registry = Arc::downgrade(&self.slots);
        let task_key = key.clone();
        let task = tokio::spawn(async move {
            // Done, failed or aborted: new callers start afresh (a caller
            // keeps what the work made).
            let _forget = Forget {
                registry,
                key: task_key,
                id,
            };
            let value = work.await;
            let _ = result_tx.send(Some(value));
        });
        let slot = Arc::new(Slot {
            id,
            result: result_rx,
            urgency: urgency_tx,
            abort: task.abort_handle(),
        });
        // Entries of work that ended are replaced here or swept below.
        if slots.len() >= 64 && slots.len().is_power_of_two() {
            slots.retain(|_, s| s.strong_count() > 0);
        }
        slots.insert(key, Arc::downgrade(&slot));
        Claim { slot }
    }

    /// Whether work for `key` is running (claimed and not finished).
    pub fn is_running(&self, key: &K) -> bool {
        lock(&self.slots)
            .get(key)
            .is_some_and(|s| s.strong_count() > 0)
    }

    /// Pieces of work running or claimed now.
    pub fn len(&self) -> usize {
        lock(&self.slots)
            .values()
            .filter(|s| s.strong_count() > 0)
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Takes a task's work out of the map when the task ends, however it ends.
struct Forget<K: Hash + Eq, V> {
    registry: Weak<Slots<K, V>>,
    key: K,
    id: u64,
}

impl<K: Hash + Eq, V> Drop for Forget<K, V> {
    fn drop(&mut self) {
        let Some(slots) = self.registry.upgrade() else {
            return;
        };
        let mut slots = lock(&slots);
        let ours = slots
            .get(&self.key)
            .is_some_and(|s| s.upgrade().is_none_or(|s| s.id == self.id));
        if ours {
            slots.remove(&self.key);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Held for map updates only; a panic elsewhere cannot leave it half-updated.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn work_runs_once_for_every_claim() {
        let work: SharedWork<u32, u32> = SharedWork::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let claims: Vec<_> = (0..5)
            .map(|_| {
                let runs = Arc::clone(&runs);
                work.claim(7, None, move |_| async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    42
                })
            })
            .collect();
        for c in &claims {
            assert_eq!(c.wait().await, Ok(42));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_last_claim_cancels_the_work() {
        let work: SharedWork<u32, ()> = SharedWork::default();
        let held = Arc::new(tokio::sync::Semaphore::new(1));
        let permit_owner = Arc::clone(&held);
        let a = work.claim(1, None, move |_| async move {
            let _permit = permit_owner.acquire().await.unwrap();
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        let b = work.claim(1, None, |_| async { unreachable!("already running") });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(held.available_permits(), 0, "the work holds the permit");
        drop(a);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(held.available_permits(), 0, "one claim still wants it");
        drop(b);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(held.available_permits(), 1, "cancelled, the permit is back");
        assert!(work.is_empty());
    }

    #[tokio::test]
    async fn a_panicking_task_abandons_its_claims() {
        let work: SharedWork<u32, u32> = SharedWork::default();
        let claim = work.claim(1, None, |_| async { panic!("a bug in a build") });
        assert_eq!(claim.wait().await, Err(Abandoned));
        // The next claim starts the work again.
        let again = work.claim(1, None, |_| async { 5 });
        assert_eq!(again.wait().await, Ok(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_live_claim_hurries_background_work() {
        let work: SharedWork<u32, Urgency> = SharedWork::default();
        let background = work.claim(1, None, |mut urgency| async move {
            urgency.wait_for(Option::is_some).await.unwrap();
            *urgency.borrow()
        });
        tokio::time::advance(Duration::from_secs(10)).await;
        let older = Instant::now() - Duration::from_secs(5);
        let newer = Instant::now();
        let live = work.claim(1, Some(newer), |_| async { unreachable!() });
        live.hurry(older);
        work.claim(1, Some(newer), |_| async { unreachable!() })
            .hurry(newer);
        assert_eq!(
            background.wait().await,
            Ok(Some(older)),
            "the oldest read wins"
        );
    }
}
