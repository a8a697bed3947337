//! The runtime the kernel connections live on, apart from the service's.
//!
//! fuse3 0.10 reads a root mount's `/dev/fuse` with a blocking read inside
//! `spawn_blocking`, so each such session holds one blocking-pool thread for
//! as long as it lives. On the service's runtime that pool (512 threads) is
//! also what passthrough reads, disk-cache loads and unmounting need: past
//! 512 mounts they all wait forever. So every session runs here instead: a
//! runtime of one worker (which only reads requests and writes replies; the
//! adapter runs each operation back on the service's runtime) and a
//! blocking pool that only the connections use.
//!
//! A user mount (through `fusermount3`) reads its descriptor asynchronously
//! and holds no thread at all. Root mounts are counted against
//! [`MAX_ROOT_SESSIONS`] so that one more than the pool can hold is refused
//! with advice instead of waiting forever.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use tokio::runtime::{Handle, Runtime};

/// Root mounts served at once, one blocking reader thread each.
pub const MAX_ROOT_SESSIONS: usize = 4096;
/// Blocking threads beyond the readers: the `fusermount3` hand-over of a
/// user mount's descriptor waits in one while it mounts.
const SPARE_BLOCKING_THREADS: usize = 64;

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static ROOT_SESSIONS: AtomicUsize = AtomicUsize::new(0);

/// The connection runtime, started on first use and kept for the process;
/// an error when it cannot be started (no threads to be had).
pub fn handle() -> std::io::Result<Handle> {
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime.handle().clone());
    }
    // One start at a time: a second runtime built and dropped here would
    // panic when dropped on an async thread.
    static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _starting = STARTING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime.handle().clone());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(MAX_ROOT_SESSIONS + SPARE_BLOCKING_THREADS)
        .thread_name("xel-fuse")
        .enable_all()
        .build()?;
    Ok(RUNTIME.get_or_init(|| runtime).handle().clone())
}

/// One root session's claim on a reader thread; given back on drop.
#[derive(Debug)]
pub struct RootSessionSlot(());

impl RootSessionSlot {
    /// A slot, or `None` when [`MAX_ROOT_SESSIONS`] are live.
    pub fn claim() -> Option<RootSessionSlot> {
        ROOT_SESSIONS
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |live| {
                (live < MAX_ROOT_SESSIONS).then_some(live + 1)
            })
            .ok()
            .map(|_| RootSessionSlot(()))
    }
}

impl Drop for RootSessionSlot {
    fn drop(&mut self) {
        ROOT_SESSIONS.fetch_sub(1, Ordering::AcqRel);
    }
}
