//! How long a read waits, and when it gives up.
//!
//! X-Plane keeps the bytes it reads until it unloads the texture, so a
//! stand-in served while the imagery was merely on its way stays on screen
//! as blurry or grey ground. A read therefore waits as long as the work it
//! needs moves, and is answered with stand-ins only when:
//!
//! - its provider *stalled*: it has had requests in flight for the stall
//!   window without answering any of them, or its circuit is open (it
//!   fails fast);
//! - its *cap* passed: `max_wait` after the first read of its visit
//!   (`startup_max_wait` while X-Plane's first scenery load runs, or
//!   while telemetry says the aircraft stands still).
//!
//! A slow link is not a stall: it answers a little at a time, and the
//! reads wait in line, the oldest first (see [`crate::sched`]).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::entry::{lock, TextureEntry};
use super::service::Inner;

/// After this long with no reads, X-Plane's first scenery load is over:
/// it reads continuously while it loads, and then only at tile crossings,
/// minutes apart.
const FIRST_LOAD_QUIET: Duration = Duration::from_secs(10);
/// Reads of one open file closer together than this are one visit.
const VISIT_GAP: Duration = Duration::from_secs(2);
/// How often a waiting read looks at its provider.
const STALL_CHECK: Duration = Duration::from_millis(250);

/// What a live read asks of the work it waits for.
#[derive(Debug, Clone, Copy)]
pub(super) struct ReadNeed {
    /// When its visit started: its place in line.
    pub since: Instant,
    /// When it is answered whatever its work is doing.
    pub cap: Instant,
}

/// Why a read stopped waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GiveUp {
    /// Its provider stalled or fails fast.
    Stalled,
    /// Its cap passed.
    PastCap,
}

impl Inner {
    /// The cap of a read starting now.
    pub(super) fn max_wait(&self) -> Duration {
        if self.startup.applies() {
            self.config.startup_max_wait
        } else {
            self.config.max_wait
        }
    }

    /// Resolves when the read should stop waiting for `entry`'s work;
    /// never while that work moves and the cap is ahead.
    pub(super) async fn give_up(&self, entry: &TextureEntry, need: ReadNeed) -> GiveUp {
        loop {
            let now = Instant::now();
            if now >= need.cap {
                return GiveUp::PastCap;
            }
            let motion = self.downloads.client().motion(entry.provider.as_ref());
            if motion.failing || motion.silent_for >= self.config.stall_window {
                return GiveUp::Stalled;
            }
            tokio::time::sleep_until(need.cap.min(now + STALL_CHECK)).await;
        }
    }
}

/// When reads get the start-up cap: during X-Plane's first scenery load
/// (from the service's start until reads have been quiet for
/// [`FIRST_LOAD_QUIET`] after the first one), and while telemetry says the
/// aircraft stands still.
#[derive(Debug, Default)]
pub(super) struct StartupPatience {
    done: AtomicBool,
    /// Telemetry says the aircraft stands still: as patient as at start.
    parked: AtomicBool,
    reading: AtomicUsize,
    /// When the last read ended, once one has.
    last_end: Mutex<Option<Instant>>,
}

impl StartupPatience {
    pub(super) fn is_done(&self) -> bool {
        self.done.load(Ordering::Relaxed)
    }

    pub(super) fn applies(&self) -> bool {
        !self.is_done() || self.parked.load(Ordering::Relaxed)
    }

    pub(super) fn set_parked(&self, parked: bool) {
        self.parked.store(parked, Ordering::Relaxed);
    }

    /// A read starts; it ends when the guard is dropped. A read that comes
    /// after a quiet spell ends the first load.
    pub(super) fn read_started(&self) -> Reading<'_> {
        let quiet = lock(&self.last_end).is_some_and(|end| end.elapsed() >= FIRST_LOAD_QUIET);
        if self.reading.fetch_add(1, Ordering::SeqCst) == 0
            && quiet
            && !self.done.swap(true, Ordering::Relaxed)
        {
            tracing::info!(
                "X-Plane's first scenery load is over: reads now wait at most the in-flight cap"
            );
        }
        Reading(self)
    }
}

/// A read in progress (see [`StartupPatience::read_started`]).
pub(super) struct Reading<'a>(&'a StartupPatience);

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        let mut end = lock(&self.0.last_end);
        if self.0.reading.fetch_sub(1, Ordering::SeqCst) == 1 {
            *end = Some(Instant::now());
        }
    }
}

/// The reads of one open texture file that belong together: X-Plane reads
/// a texture as its header then the levels it needs, or whole in a dozen
/// pieces, one right after another. They share the first read's start, so
/// they keep their place in line and a texture is not a dozen caps long.
/// A read after the file sat unread for [`VISIT_GAP`] starts a new visit.
#[derive(Debug, Default)]
pub struct Visit {
    /// The visit's start and its last read's start or end.
    times: Mutex<Option<(Instant, Instant)>>,
}

impl Visit {
    /// A read starts: the start of the visit it belongs to.
    pub fn begin_read(&self) -> Instant {
        let now = Instant::now();
        let mut times = lock(&self.times);
        let start = match *times {
            Some((start, last)) if now.duration_since(last) < VISIT_GAP => start,
            _ => now,
        };
        *times = Some((start, now));
        start
    }

    /// A read ended: the visit goes on if the next read comes soon.
    pub fn end_read(&self) {
        if let Some((_, last)) = lock(&self.times).as_mut() {
            *last = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn reads_in_quick_succession_are_one_visit() {
        let visit = Visit::default();
        let first = visit.begin_read();
        tokio::time::advance(Duration::from_secs(30)).await;
        visit.end_read();
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(visit.begin_read(), first, "the next piece, right after");
        visit.end_read();
        tokio::time::advance(VISIT_GAP).await;
        let later = visit.begin_read();
        assert_eq!(later, Instant::now(), "read again later: a new visit");
    }

    #[tokio::test(start_paused = true)]
    async fn the_startup_ends_after_a_quiet_spell() {
        let load = StartupPatience::default();
        assert!(!load.is_done());
        let a = load.read_started();
        tokio::time::advance(FIRST_LOAD_QUIET * 2).await;
        let b = load.read_started();
        drop(a);
        assert!(!load.is_done(), "reads overlapped all along");
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(b);
        tokio::time::advance(FIRST_LOAD_QUIET / 2).await;
        drop(load.read_started());
        assert!(!load.is_done(), "a short pause within the load");
        tokio::time::advance(FIRST_LOAD_QUIET).await;
        let _c = load.read_started();
        assert!(load.is_done(), "the next read comes after a quiet spell");
        assert!(!load.applies());
        load.set_parked(true);
        assert!(load.applies(), "parked: as patient as at the start");
    }
}
