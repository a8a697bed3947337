//! The CPU pool: decode, mips and encode run on Tokio's blocking threads,
//! at most `threads` jobs at once, so a burst of hundreds of textures keeps
//! every core busy without starving the async runtime or oversubscribing.

use std::sync::Arc;

use tokio::sync::Semaphore;

/// Bounded CPU work. Waiters are served in arrival order (the semaphore is
/// fair); a second, higher-priority queue would slot in here.
#[derive(Debug, Clone)]
pub struct CpuPool {
    permits: Arc<Semaphore>,
}

impl CpuPool {
    pub fn new(threads: usize) -> Self {
        CpuPool {
            permits: Arc::new(Semaphore::new(threads.max(1))),
        }
    }

    /// Runs `job` on a blocking thread once a slot is free. A panic in the
    /// job resumes in the caller.
    pub async fn run<R: Send + 'static>(&self, job: impl FnOnce() -> R + Send + 'static) -> R {
        let _slot = self
            .permits
            .acquire()
            .await
            .expect("the CPU pool semaphore is never closed");
        match tokio::task::spawn_blocking(job).await {
            Ok(result) => result,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}
