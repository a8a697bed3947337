//! What a failed filesystem operation is worth telling. Every error the
//! kernel gets passes through [`FsErrors::record`], which counts it under
//! its errno and logs it at that errno's level: a name that does not exist
//! (`ENOENT`) or a write refused on a read-only mount is routine and stays
//! at debug; an `EIO` on a scenery file, a swapped symlink refused
//! (`ELOOP`), a bad handle, or anything else unexpected is a warning,
//! visible at the default log level, because X-Plane may crash on it
//! (said once in a while when it repeats, see [`LogLimit`], and counted
//! every time).

use std::fmt;

use crate::log_limit::LogLimit;
use crate::metrics::Counter;

use super::FsError;

/// The errnos counted on their own; any other counts as "other".
const NAMED: [(i32, &str); 9] = [
    (libc::ENOENT, "enoent"),
    (libc::EIO, "eio"),
    (libc::EACCES, "eacces"),
    (libc::ELOOP, "eloop"),
    (libc::EBADF, "ebadf"),
    (libc::EROFS, "erofs"),
    (libc::ENOTDIR, "enotdir"),
    (libc::EISDIR, "eisdir"),
    (libc::EINVAL, "einval"),
];

/// Counts of failed operations by errno, for one mount.
#[derive(Debug, Default)]
pub struct FsErrors {
    named: [Counter; NAMED.len()],
    other: Counter,
    /// Each errno's warnings (the last slot: the others') are said once in
    /// a while: an EIO on a file X-Plane reads in a loop must not flood
    /// the log.
    warnings: [LogLimit; NAMED.len() + 1],
}

/// How loudly a failed operation is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Routine: what a caller asked for does not exist or cannot be done
    /// on a read-only mount.
    Routine,
    /// Something is wrong with the package, the disk or this program.
    Warning,
}

/// The level of an errno.
pub fn severity(errno: i32) -> Severity {
    match errno {
        libc::ENOENT | libc::EROFS | libc::ENOTDIR | libc::EISDIR | libc::EINVAL => {
            Severity::Routine
        }
        _ => Severity::Warning,
    }
}

impl FsErrors {
    /// Counts and logs `err` from operation `op`; returns its errno.
    pub fn record(&self, op: &'static str, err: &FsError) -> i32 {
        let errno = err.errno();
        let slot = NAMED.iter().position(|(named, _)| *named == errno);
        match slot {
            Some(i) => self.named[i].incr(),
            None => self.other.incr(),
        }
        match severity(errno) {
            Severity::Routine => {
                tracing::debug!(op, errno, %err, "fuse operation failed");
            }
            Severity::Warning => {
                if let Some(held_back) = self.warnings[slot.unwrap_or(NAMED.len())].check() {
                    tracing::warn!(op, errno, %err, held_back, "fuse operation failed");
                }
            }
        }
        errno
    }

    /// The counts so far.
    pub fn snapshot(&self) -> ErrorCounts {
        ErrorCounts {
            named: std::array::from_fn(|i| self.named[i].get()),
            other: self.other.get(),
        }
    }
}

/// Failed operations by errno, at one moment; add them up over mounts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorCounts {
    named: [u64; NAMED.len()],
    other: u64,
}

impl ErrorCounts {
    /// Every count as (key, count), `fuse_errors_enoent` ... `fuse_errors_other`,
    /// zeros included (for `--stats-file`).
    pub fn pairs(&self) -> impl Iterator<Item = (String, u64)> + '_ {
        NAMED
            .iter()
            .zip(self.named)
            .map(|((_, name), n)| (format!("fuse_errors_{name}"), n))
            .chain(std::iter::once((
                "fuse_errors_other".to_string(),
                self.other,
            )))
    }

    /// The count for `errno` (0 for one not counted on its own).
    pub fn of(&self, errno: i32) -> u64 {
        NAMED
            .iter()
            .position(|(named, _)| *named == errno)
            .map_or(0, |i| self.named[i])
    }
}

impl std::ops::Add for ErrorCounts {
    type Output = ErrorCounts;

    fn add(self, rhs: ErrorCounts) -> ErrorCounts {
        ErrorCounts {
            named: std::array::from_fn(|i| self.named[i] + rhs.named[i]),
            other: self.other + rhs.other,
        }
    }
}

/// The non-zero counts, `EIO 2, ENOENT 40`, or `none`.
impl fmt::Display for ErrorCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut any = false;
        for ((_, name), n) in NAMED.iter().zip(self.named) {
            if n > 0 {
                write!(
                    f,
                    "{}{} {n}",
                    if any { ", " } else { "" },
                    name.to_uppercase()
                )?;
                any = true;
            }
        }
        if self.other > 0 {
            write!(f, "{}other {}", if any { ", " } else { "" }, self.other)?;
            any = true;
        }
        if !any {
            write!(f, "none")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    #[test]
    fn routine_errors_stay_quiet_and_unexpected_ones_warn() {
        assert_eq!(severity(libc::ENOENT), Severity::Routine);
        assert_eq!(severity(libc::EROFS), Severity::Routine);
        assert_eq!(severity(libc::EIO), Severity::Warning);
        assert_eq!(severity(libc::ELOOP), Severity::Warning);
        assert_eq!(severity(libc::EBADF), Severity::Warning);
        assert_eq!(severity(libc::ENOSPC), Severity::Warning);
    }

    #[test]
    fn each_errno_has_its_own_count() {
        let errors = FsErrors::default();
        assert_eq!(errors.record("lookup", &FsError::NotFound), libc::ENOENT);
        errors.record("lookup", &FsError::NotFound);
        let eio = FsError::Io(io::Error::from_raw_os_error(libc::EIO));
        assert_eq!(errors.record("read", &eio), libc::EIO);
        let enospc = FsError::Io(io::Error::from_raw_os_error(libc::ENOSPC));
        errors.record("read", &enospc);
        let counts = errors.snapshot();
        assert_eq!(counts.of(libc::ENOENT), 2);
        assert_eq!(counts.of(libc::EIO), 1);
        assert_eq!(counts.to_string(), "ENOENT 2, EIO 1, other 1");
        let pairs: Vec<_> = (counts + counts).pairs().collect();
        assert!(pairs.contains(&("fuse_errors_enoent".to_string(), 4)));
        assert!(pairs.contains(&("fuse_errors_eio".to_string(), 2)));
        assert!(pairs.contains(&("fuse_errors_other".to_string(), 2)));
        assert!(pairs.contains(&("fuse_errors_ebadf".to_string(), 0)));
        assert_eq!(ErrorCounts::default().to_string(), "none");
    }
}
