//! The CPU pool: decode, mips and encode run on Tokio's blocking threads,
//! at most `threads` jobs at once, so a burst of hundreds of textures keeps
//! every core busy without starving the async runtime or oversubscribing.
//! Jobs wait in [`crate::sched`]'s order: live jobs first, the oldest read's
//! first; background jobs use at most half the threads (at least one), so a
//! prefetch can never hold every core when a reader comes.

use tokio::sync::watch;

use super::shared_work::Urgency;
use crate::sched::{ClassedPermits, PermitCounts};

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

    /// Runs `job` on a blocking thread once its turn comes (live while
    /// `urgency` names a read, in line by that read's age; a job whose
    /// urgency changes while it waits moves in line). The slot is held by the job
    /// itself, so a caller that goes away does not free it while the job
    /// still runs. A panic in the job resumes in the caller; a job
    /// cancelled because the runtime shuts down never returns.
    pub async fn run<R: Send + 'static>(
        &self,
        urgency: &mut watch::Receiver<Urgency>,
        job: impl FnOnce() -> R + Send + 'static,
    ) -> R {
        let slot = self.permits.acquire_as(urgency).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::time::Instant;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_background_job_promoted_while_it_waits_runs_as_live() {
        // Two threads: background may hold one, and holds it (blocked).
        let pool = CpuPool::new(2);
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (_first_tx, mut first_urgency) = watch::channel(None);
        let blocker = {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.run(&mut first_urgency, move || held.recv().unwrap())
                    .await
            })
        };
        while pool.counts().background_held == 0 {
            tokio::task::yield_now().await;
        }
        // A second background job queues behind the first...
        let (promote, mut urgency) = watch::channel(None);
        let queued = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(&mut urgency, || 42).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!queued.is_finished(), "background keeps to its share");
        // ...until a reader joins it: it takes the free live thread at once.
        promote.send_replace(Some(Instant::now()));
        let answer = tokio::time::timeout(Duration::from_secs(10), queued)
            .await
            .expect("promoted work does not wait for background work")
            .unwrap();
        assert_eq!(answer, 42);
        assert_eq!(pool.counts().background_held, 1, "the first still holds");
        release.send(()).unwrap();
        blocker.await.unwrap();
    }
}
