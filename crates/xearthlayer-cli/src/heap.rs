//! The process heap (glibc malloc): how it is set at start, and giving the
//! memory of evicted textures back to the system once a burst is over.
//!
//! Texture parts are buffers of 8 KiB to 1.4 MiB, allocated by the CPU
//! pool's threads and freed whenever the memory cache evicts. glibc keeps
//! freed heap memory for reuse and returns only what lies at the top of a
//! heap, so once the cache is full and evicting, holes left by evicted parts
//! stay resident, in as many heaps (arenas) as threads have used: resident
//! memory beyond the cache grew burst after burst (BENCHMARKS.md, "Memory
//! over a long flight"). Fewer arenas, and a trim whenever the service goes
//! idle after work, keep it flat.

use std::time::Duration;

use tokio::task::JoinHandle;
use xearthlayer::texture::TextureService;

/// Heaps (arenas) glibc may make; its default is 8 per core, and the
/// blocking threads that run CPU jobs and disk writes come and go, each
/// leaving holes in the heap it used. With two, later parts fill the holes
/// of earlier ones (measured: resident memory beyond the cache stopped
/// growing); the few allocations of a CPU job do not contend for them.
const ARENAS: libc::c_int = 2;

/// Between looks at whether the service went idle.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Sets the allocator up; call first thing, before any thread starts.
pub fn limit_heap_growth() {
    // SAFETY: mallopt only sets allocator parameters, under glibc's own lock.
    unsafe {
        // Whole textures (11 MB) and the CPU pool's working buffers get
        // their own mappings, returned to the system when freed; glibc's
        // dynamic threshold would soon move them onto the heap.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 2 << 20);
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

/// Trims the heap each time the service goes idle after doing work, until
/// aborted.
pub fn spawn_trimmer(service: TextureService) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut policy = TrimPolicy::default();
        let mut looks = tokio::time::interval(LOOK_EVERY);
        loop {
            looks.tick().await;
            let work = WorkSeen {
                units_built: service.metrics().units_built.get(),
                memory_bytes: service.memory_bytes(),
            };
            let now = service.work();
            let idle = now.idle() && now.pending_write_bytes == 0;
            if policy.should_trim(idle, work) {
                // It walks every free chunk of the heap: a few milliseconds.
                let _ = tokio::task::spawn_blocking(trim).await;
            }
        }
    })
}

/// Gives free heap pages back to the system (after a burst, or after
/// indexing thousands of packages, whose scratch memory is freed at once).
pub fn trim() {
    // SAFETY: malloc_trim only releases free heap pages, under glibc's locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// What the service has done, as far as the heap is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WorkSeen {
    units_built: u64,
    memory_bytes: u64,
}

/// Trim once per idle spell that follows work: not while work runs (its
/// freed memory is about to be reused), not again while nothing happens.
#[derive(Debug, Default)]
struct TrimPolicy {
    trimmed_after: Option<WorkSeen>,
}

impl TrimPolicy {
    fn should_trim(&mut self, idle: bool, work: WorkSeen) -> bool {
        if !idle || self.trimmed_after == Some(work) {
            return false;
        }
        self.trimmed_after = Some(work);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(units_built: u64, memory_bytes: u64) -> WorkSeen {
        WorkSeen {
            units_built,
            memory_bytes,
        }
    }

    #[test]
    fn trims_once_per_idle_spell_after_work() {
        let mut policy = TrimPolicy::default();
        assert!(!policy.should_trim(false, seen(5, 100)), "busy");
        assert!(policy.should_trim(true, seen(5, 100)), "idle after work");
        assert!(!policy.should_trim(true, seen(5, 100)), "nothing new");
        assert!(!policy.should_trim(false, seen(9, 300)), "busy again");
        assert!(policy.should_trim(true, seen(9, 300)));
        assert!(
            policy.should_trim(true, seen(9, 200)),
            "the cache gave memory back (a disk load evicted)"
        );
    }

    fn resident_bytes() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kib << 10
    }

    #[test]
    fn a_trim_gives_back_the_holes_that_freed_parts_leave() {
        limit_heap_growth();
        // 64 parts of 512 KiB (on the heap, under the mmap threshold), then
        // one more kept, so the freed ones are a hole, not the heap's top.
        let parts: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8 | 1; 512 << 10]).collect();
        let kept = vec![1u8; 512 << 10];
        drop(parts);
        let before = resident_bytes();
        trim();
        let after = resident_bytes();
        assert!(
            before.saturating_sub(after) >= 16 << 20,
            "a trim gave back {} KiB of a 32 MiB hole",
            before.saturating_sub(after) >> 10
        );
        assert!(kept.iter().all(|&b| b == 1));
    }
}
