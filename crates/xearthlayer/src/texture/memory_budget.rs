//! A byte budget for memory that background work holds outside the memory
//! cache: bytes are reserved *before* the work takes them on, and work that
//! finds the budget spent is shed (it is background work: nobody waits for
//! it, and it can be done again later), so a backlog cannot grow memory.
//!
//! Today it bounds the parts waiting to be written to the disk cache. A part
//! is shared with its texture's entry while that is cached, but a backed-up
//! disk keeps the parts of evicted textures alive: counted in parts (256 of
//! up to 1.4 MiB for BC3) the backlog could hold a third of a GiB.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget's unit: reservations are rounded up to whole KiB, so a
/// budget of up to 4 TiB fits the semaphore's permit count.
const UNIT: u64 = 1024;

/// Bytes that may be held at once.
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    units: Arc<Semaphore>,
    capacity_units: u32,
}

/// Bytes held until dropped.
#[derive(Debug)]
pub struct Reservation {
    _units: OwnedSemaphorePermit,
}

impl MemoryBudget {
    pub fn new(bytes: u64) -> Self {
        let capacity_units = u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX);
        MemoryBudget {
            units: Arc::new(Semaphore::new(capacity_units as usize)),
            capacity_units,
        }
    }

    /// Reserves `bytes` now, or `None` if the budget cannot hold them.
    pub fn try_reserve(&self, bytes: u64) -> Option<Reservation> {
        let units = u32::try_from(bytes.div_ceil(UNIT)).ok()?;
        Arc::clone(&self.units)
            .try_acquire_many_owned(units)
            .ok()
            .map(|units| Reservation { _units: units })
    }

    /// Bytes reserved now (in whole KiB).
    pub fn held(&self) -> u64 {
        let free = self.units.available_permits() as u64;
        (u64::from(self.capacity_units) - free) * UNIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_past_the_budget_are_refused_until_bytes_come_back() {
        let budget = MemoryBudget::new(10 << 20);
        let a = budget.try_reserve(6 << 20).expect("fits");
        assert_eq!(budget.held(), 6 << 20);
        assert!(budget.try_reserve(5 << 20).is_none(), "6 + 5 > 10 MiB");
        let b = budget.try_reserve(4 << 20).expect("6 + 4 fits exactly");
        assert!(budget.try_reserve(1).is_none(), "full");
        drop(a);
        assert_eq!(budget.held(), 4 << 20);
        assert!(budget.try_reserve(5 << 20).is_some());
        drop(b);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn bytes_round_up_to_whole_units_and_huge_asks_are_refused() {
        let budget = MemoryBudget::new(4096);
        let one = budget.try_reserve(1).expect("fits");
        assert_eq!(budget.held(), 1024, "a byte takes a whole KiB");
        assert!(budget.try_reserve(3073).is_none(), "4 KiB units, 1 held");
        drop(one);
        assert!(budget.try_reserve(u64::MAX).is_none());
        assert!(budget.try_reserve(4097).is_none());
        assert_eq!(budget.held(), 0);
    }
}
