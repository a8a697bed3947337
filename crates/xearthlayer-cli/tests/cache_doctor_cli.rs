//! `xearthlayer cache stats|clear` over a disk cache filled by `generate`
//! from the local test server, and `xearthlayer doctor` on a system without
//! X-Plane and with a provider that does not answer. Every run gets a
//! temporary HOME.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use xel_sim::server::{start_in_background, ServerConfig};

const TEXTURE: &str = "25264_10368_BI16.dds";

fn xearthlayer(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xearthlayer"))
        .args(args)
        .env("HOME", home)
        .env_remove("XEARTHLAYER_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn cache_stats_and_clear() {
    let server = start_in_background(ServerConfig::default()).unwrap();
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("cache");
    let cache_arg = cache.to_str().unwrap();
    let out = xearthlayer(home.path(), &["cache", "stats", "--cache-dir", cache_arg]);
    assert!(
        out.status.success() && text(&out).contains("empty"),
        "{}",
        text(&out)
    );

    let dds = home.path().join("t.dds");
    let out = xearthlayer(
        home.path(),
        &[
            "generate",
            TEXTURE,
            "-o",
            dds.to_str().unwrap(),
            "--url",
            &server.url_template(),
            "--cache-dir",
            cache_arg,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));

    let out = xearthlayer(home.path(), &["cache", "stats", "--cache-dir", cache_arg]);
    let stats = text(&out);
    assert!(
        stats
            .lines()
            // The custom provider's folder is named after its server.
            .any(|l| l.contains("custom-127.0.0.1_")
                && l.contains("/bc1")
                && l.contains(" 1 textures")),
        "{stats}"
    );

    // No terminal to ask on and no --yes: nothing is deleted.
    let out = xearthlayer(home.path(), &["cache", "clear", "--cache-dir", cache_arg]);
    assert!(!out.status.success());
    assert!(text(&out).contains("--yes"), "{}", text(&out));

    let out = xearthlayer(
        home.path(),
        &["cache", "clear", "--yes", "--cache-dir", cache_arg],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("deleted 1 cached textures"),
        "{}",
        text(&out)
    );
    let out = xearthlayer(home.path(), &["cache", "stats", "--cache-dir", cache_arg]);
    assert!(
        text(&out).lines().any(|l| l.contains("custom-127.0.0.1_")
            && l.contains("/bc1")
            && l.contains(" 0 textures")),
        "{}",
        text(&out)
    );
}

#[test]
fn doctor_names_each_problem_with_its_fix() {
    let home = tempfile::tempdir().unwrap();
    // Port 9 (discard) on loopback: nothing listens, the connection is refused.
    let out = xearthlayer(
        home.path(),
        &["doctor", "--url", "http://127.0.0.1:9/{z}/{x}/{y}.jpg"],
    );
    let report = text(&out);
    assert!(!out.status.success(), "{report}");
    let problem = |what: &str| {
        let at = report
            .lines()
            .position(|l| l.starts_with("PROBLEM") && l.contains(what))
            .unwrap_or_else(|| panic!("no problem about '{what}' in:\n{report}"));
        let fix = report.lines().nth(at + 1).unwrap_or_default().to_string();
        assert!(fix.trim_start().starts_with("fix: "), "{fix}");
        fix
    };
    assert!(problem("Custom Scenery").contains("--custom-scenery"));
    // The cause is named, and what to check for it.
    assert!(report.contains("does not answer") && report.contains("connection refused"));
    assert!(problem("connection refused").contains("nothing listens"));
    assert!(report.contains("no configuration file"), "{report}");
    assert!(
        report.lines().any(|l| l.contains("open-file limit")),
        "{report}"
    );
    assert!(report.lines().any(|l| l.contains("/dev/fuse")), "{report}");
}
