//! What the benchmark reads from `/proc`: a process's CPU time and
//! resident memory (now and peak), the machine's CPU counters and size, and whether a path
//! is a mount point. Linux only, like the FUSE service it measures.

use std::io;
use std::path::Path;

/// Seconds of CPU (user and system, all threads) `pid` has used.
pub fn process_cpu_seconds(pid: u32) -> io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; it ends at the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::other(format!("/proc/{pid}/stat: no ')'")))?;
    // Fields from 3 (state) on: utime is field 14, stime field 15.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> io::Result<u64> {
        fields.get(i).and_then(|f| f.parse().ok()).ok_or_else(|| {
            io::Error::other(format!("/proc/{pid}/stat: field {} unreadable", i + 3))
        })
    };
    Ok((ticks(11)? + ticks(12)?) as f64 / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// The machine's CPU time counters (all cores, in clock ticks).
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineCpu {
    pub busy: u64,
    pub total: u64,
}

impl MachineCpu {
    /// Share of all cores busy between `self` (earlier) and `later`.
    pub fn busy_share_until(&self, later: &MachineCpu) -> f64 {
        let total = later.total.saturating_sub(self.total);
        if total == 0 {
            return 0.0;
        }
        later.busy.saturating_sub(self.busy) as f64 / total as f64
    }
}

/// The first line of `/proc/stat`: busy is everything but idle and iowait.
pub fn machine_cpu() -> io::Result<MachineCpu> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or_else(|| io::Error::other("/proc/stat: no cpu line"))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let total: u64 = values.iter().sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    Ok(MachineCpu {
        busy: total - idle,
        total,
    })
}

/// Peak resident memory of `pid` since it started or since the last
/// [`reset_peak_rss`] (`VmHWM`).
pub fn peak_rss_bytes(pid: u32) -> io::Result<u64> {
    status_kib(pid, "VmHWM:").map(|kib| kib << 10)
}

/// Resident memory of `pid` now (`VmRSS`).
pub fn rss_bytes(pid: u32) -> io::Result<u64> {
    status_kib(pid, "VmRSS:").map(|kib| kib << 10)
}

/// Threads of `pid` now.
pub fn threads(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::other(format!("/proc/{pid}/status: no Threads")))
}

/// Starts a new peak resident memory measurement for `pid`.
pub fn reset_peak_rss(pid: u32) -> io::Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
}

fn status_kib(pid: u32, key: &str) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::other(format!("/proc/{pid}/status: no {key}")))
}

/// Whether `path` (absolute) is a mount point, from `/proc/self/mountinfo`.
pub fn is_mounted(path: &Path) -> io::Result<bool> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    let want = path.to_string_lossy();
    Ok(info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mountpoint| unescape(mountpoint) == want))
}

/// Mount table fields escape space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            let s = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(s, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The machine the numbers come from.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cores: usize,
    pub memory_bytes: u64,
    pub cpu_model: String,
    pub kernel: String,
}

impl Machine {
    pub fn this() -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let meminfo = read("/proc/meminfo");
        let memory_kib: u64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        let cpu_model = read("/proc/cpuinfo")
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|v| v.split_once(':'))
            .map_or_else(|| "unknown CPU".to_string(), |(_, m)| m.trim().to_string());
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes: memory_kib << 10,
            cpu_model,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(process_cpu_seconds(pid).unwrap() >= 0.0);
        // Resident memory now, then the peak: never below it.
        let rss = rss_bytes(pid).unwrap();
        assert!(rss > 0);
        assert!(peak_rss_bytes(pid).unwrap() >= rss);
        let (a, b) = (machine_cpu().unwrap(), machine_cpu().unwrap());
        assert!(b.total >= a.total && a.busy <= a.total);
    }

    #[test]
    fn root_is_mounted_and_escapes_are_undone() {
        assert!(is_mounted(Path::new("/")).unwrap());
        assert!(!is_mounted(Path::new("/no/such/mount")).unwrap());
        assert_eq!(unescape(r"/mnt/a\040b\134c"), r"/mnt/a b\c");
    }
}
