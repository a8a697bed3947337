//! `xearthlayer generate` as two processes sharing a disk cache: the second
//! makes no request at all, and both write the same valid file.

use std::process::Command;

use xearthlayer::dds::layout::{self, DdsFormat};
use xel_sim::server::{start_in_background, ServerConfig};

#[test]
fn a_second_process_is_served_from_the_disk_cache() {
    let server = start_in_background(ServerConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let generate = |out: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_xearthlayer"))
            .args(["generate", "25264_10368_BI16.dds", "--output"])
            .arg(dir.path().join(out))
            .args(["--url", &server.url_template(), "--cache-dir"])
            .arg(dir.path().join("cache"))
            .env("HOME", dir.path())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::read(dir.path().join(out)).unwrap()
    };
    let first = generate("first.dds");
    assert_eq!(first.len() as u64, layout::file_size(DdsFormat::Bc1));
    assert_eq!(&first[..128], &layout::header(DdsFormat::Bc1));
    // 256 chunks at ZL, and the one at ZL-4 the low levels come from.
    assert_eq!(server.stats().requests, 257);
    let second = generate("second.dds");
    assert_eq!(
        server.stats().requests,
        257,
        "the second process made requests"
    );
    assert!(first == second);
}
