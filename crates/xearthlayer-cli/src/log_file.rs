//! The log file of `start` and `run`, `~/.xearthlayer/xearthlayer.log`:
//! rotated by size (past [`MAX_BYTES`] it becomes `xearthlayer.log.1`, the
//! older ones move up, [`KEPT`] are kept), and written by a background
//! thread, so that no thread serving X-Plane ever waits on the disk. If the
//! disk falls far behind, lines are dropped rather than waited for.

use std::io;
use std::path::Path;

use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use tracing_appender::non_blocking::{NonBlocking, WorkerGuard};

/// Size past which the log file is rotated.
pub const MAX_BYTES: usize = 10 << 20;
/// Rotated files kept beside the current one.
pub const KEPT: usize = 4;

/// The writer of `dir/xearthlayer.log`, and the guard that flushes what is
/// still queued when dropped (drop it before the process exits).
pub fn open(dir: &Path) -> io::Result<(NonBlocking, WorkerGuard)> {
    open_with(dir, MAX_BYTES)
}

fn open_with(dir: &Path, max_bytes: usize) -> io::Result<(NonBlocking, WorkerGuard)> {
    std::fs::create_dir_all(dir)?;
    let file = FileRotate::new(
        dir.join("xearthlayer.log"),
        AppendCount::new(KEPT),
        ContentLimit::BytesSurpassed(max_bytes),
        Compression::None,
        None,
    );
    Ok(tracing_appender::non_blocking(file))
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_a_few() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, guard) = open_with(dir.path(), 1000).unwrap();
        let line = [b'x'; 99];
        for _ in 0..100 {
            writer.write_all(&line).unwrap();
            writer.write_all(b"\n").unwrap();
        }
        drop(guard);
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "xearthlayer.log",
                "xearthlayer.log.1",
                "xearthlayer.log.2",
                "xearthlayer.log.3",
                "xearthlayer.log.4"
            ]
        );
        for name in names {
            let size = std::fs::metadata(dir.path().join(&name)).unwrap().len();
            assert!(size <= 1100, "{name}: {size} bytes");
        }
    }
}
