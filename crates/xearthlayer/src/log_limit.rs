//! Repeated warnings said once per interval, with a count of those held
//! back. A full disk fails every part written and a broken file every read
//! of it: the log must say so, but once every few seconds, not thousands
//! of times (a log that floods hides everything else, and fills the disk
//! further).

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How often a warning that keeps coming is said.
pub const EVERY: Duration = Duration::from_secs(10);

/// One kind of warning's limit.
#[derive(Debug)]
pub struct LogLimit {
    every: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    last: Option<Instant>,
    held_back: u64,
}

impl Default for LogLimit {
    fn default() -> Self {
        LogLimit::new(EVERY)
    }
}

impl LogLimit {
    pub const fn new(every: Duration) -> LogLimit {
        LogLimit {
            every,
            state: Mutex::new(State {
                last: None,
                held_back: 0,
            }),
        }
    }

    /// Whether to say the warning now; if so, how many of it were held back
    /// since it was last said.
    pub fn check(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if state.last.is_some_and(|last| now - last < self.every) {
            state.held_back += 1;
            return None;
        }
        state.last = Some(now);
        Some(std::mem::take(&mut state.held_back))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn says_it_once_per_interval_with_the_count_held_back() {
        let limit = LogLimit::new(Duration::from_secs(10));
        assert_eq!(limit.check(), Some(0));
        for _ in 0..5 {
            assert_eq!(limit.check(), None);
        }
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(limit.check(), None);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(limit.check(), Some(6));
        assert_eq!(limit.check(), None);
    }
}
