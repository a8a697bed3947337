//! `xearthlayer demo` as CI runs it: end to end, offline, and it says what
//! it measured. Needs root and /dev/fuse; prints SKIPPED otherwise.

use std::process::Command;

use xel_sim::mounts::can_mount;

#[test]
fn demo_runs_end_to_end_and_writes_a_preview() {
    if !can_mount() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xearthlayer"))
        .args(["demo", "--textures", "8", "--latency-ms", "5", "--dir"])
        .arg(dir.path())
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "cold:",
        "warm:",
        "chunk requests",
        "5. a short flight",
        "start-up load",
        "load at",
        "demo complete",
    ] {
        assert!(
            stdout.contains(expected),
            "missing '{expected}' in:\n{stdout}"
        );
    }
    // The flight's prefetch built the band ahead before X-Plane loaded it.
    let built: u64 = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("prefetch built "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no prefetch line in:\n{stdout}"));
    assert!(built > 0, "{stdout}");
    let preview = std::fs::read(dir.path().join("preview.png")).unwrap();
    assert!(preview.starts_with(b"\x89PNG"));
    // A 1024 px RGBA image of real imagery is far from empty.
    assert!(preview.len() > 100_000, "{} bytes", preview.len());
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo.contains(&*dir.path().to_string_lossy()),
        "unmounted at the end"
    );
}
