//! The CPU pool: decode, mips and encode run on Tokio's blocking threads,
//! at most `threads` jobs at once, so a burst of hundreds of textures keeps
//! every core busy without starving the async runtime or oversubscribing.
//! Live jobs go first; background jobs use at most half the threads (at
//! least one), so a prefetch can never hold every core when a reader comes.

use crate::sched::{ClassedPermits, PermitCounts, WorkClass};

/// Bounded CPU work in two classes.
#[derive(Debug, Clone)]
pub struct CpuPool {
    permits: ClassedPermits,
}

impl CpuPool {
    pub fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        CpuPool {
            permits: ClassedPermits::new(threads, threads.div_ceil(2)),
        }
    }

    /// Runs `job` on a blocking thread once a slot of `class` is free. The
    /// slot is held by the job itself, so a caller that goes away does not
    /// free it while the job still runs. A panic in the job resumes in the
    /// caller; a job cancelled because the runtime shuts down never returns.
    pub async fn run<R: Send + 'static>(
        &self,
        class: WorkClass,
        job: impl FnOnce() -> R + Send + 'static,
    ) -> R {
        let slot = self.permits.acquire(class).await;
        let job = move || {
            let _slot = slot;
            job()
        };
        match tokio::task::spawn_blocking(job).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => std::future::pending().await,
        }
    }

    pub fn counts(&self) -> PermitCounts {
        self.permits.counts()
    }
}
