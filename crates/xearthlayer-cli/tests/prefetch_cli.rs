//! `xearthlayer prefetch` end to end: a sample package, the local imagery
//! server and a disk cache in a temporary folder. Along a flight plan it
//! fills the cache; run again, it downloads nothing (resumable); around an
//! airport of a made-up X-Plane install it finds what the route already
//! fetched; bad input fails with a message naming the file and line.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use xel_sim::package::{create_package, PackageSpec};
use xel_sim::server::{start_in_background, ServerConfig};

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

/// The count in `done: N chunks downloaded`.
fn downloaded(out: &Output) -> u64 {
    let all = text(out);
    let after = all
        .split("done: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no summary in {all}"));
    after.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn along_a_flight_plan_then_again_with_nothing_to_download() {
    let server = start_in_background(ServerConfig::default()).unwrap();
    let home = tempfile::tempdir().unwrap();
    let package = create_package(
        &home.path().join("pkg"),
        &PackageSpec {
            textures: 4,
            ..PackageSpec::default()
        },
    )
    .unwrap();
    // Brest to a point west of the package, across it: the package's four
    // textures (around 47.5N 5.6W) are all within 20 km of the second leg.
    let plan = home.path().join("LFRB-sea.fms");
    std::fs::write(
        &plan,
        "I\n1100 Version\nCYCLE 2313\nADEP LFRB\nNUMENR 3\n\
         1 LFRB ADEP 325.000000 48.447911 -4.418539\n\
         28 +47.500_-005.000 DRCT 9000.000000 47.500000 -5.000000\n\
         28 +47.500_-006.500 DRCT 9000.000000 47.500000 -6.500000\n",
    )
    .unwrap();
    let cache = home.path().join("cache");
    let url = server.url_template();
    let args = [
        "prefetch",
        "--source",
        package.root.to_str().unwrap(),
        "--fms",
        plan.to_str().unwrap(),
        "--url",
        &url,
        "--cache-dir",
        cache.to_str().unwrap(),
    ];
    let first = xearthlayer(home.path(), &args);
    assert!(first.status.success(), "{}", text(&first));
    assert!(
        text(&first).contains("4 textures within 20 km of the 2 legs"),
        "{}",
        text(&first)
    );
    let fetched = server.stats().requests;
    assert!(
        fetched > 0 && downloaded(&first) == fetched,
        "{} vs {fetched}",
        text(&first)
    );

    let second = xearthlayer(home.path(), &args);
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!(downloaded(&second), 0, "{}", text(&second));
    assert_eq!(
        server.stats().requests,
        fetched,
        "the second run downloaded"
    );

    // An airport of a made-up X-Plane 12 at the package: all on disk already.
    let xplane = home.path().join("X-Plane 12");
    let nav = xplane.join("Global Scenery/Global Airports/Earth nav data");
    std::fs::create_dir_all(xplane.join("Custom Scenery")).unwrap();
    std::fs::create_dir_all(&nav).unwrap();
    std::fs::write(
        nav.join("apt.dat"),
        "I\n1200 Version\n1 10 0 0 XSEA Sea base\n1302 datum_lat 47.5\n1302 datum_lon -5.6\n99\n",
    )
    .unwrap();
    let scenery = xplane.join("Custom Scenery");
    let mut airport_args = args.to_vec();
    airport_args.splice(3..5, ["--airport", "xsea", "--radius", "10"]);
    airport_args.extend(["--custom-scenery", scenery.to_str().unwrap()]);
    let near = xearthlayer(home.path(), &airport_args);
    assert!(near.status.success(), "{}", text(&near));
    assert!(
        text(&near).contains("of XSEA (47.5000,-5.6000)"),
        "{}",
        text(&near)
    );
    assert_eq!(downloaded(&near), 0, "{}", text(&near));

    airport_args[4] = "EGLL";
    let missing = xearthlayer(home.path(), &airport_args);
    assert!(!missing.status.success());
    assert!(
        text(&missing).contains("airport \"EGLL\" is not in"),
        "{}",
        text(&missing)
    );

    std::fs::write(
        &plan,
        "I\n1100 Version\nNUMENR 1\n1 LFRB ADEP 0 48.4 west\n",
    )
    .unwrap();
    let bad = xearthlayer(home.path(), &args);
    assert!(!bad.status.success());
    assert!(
        text(&bad).contains(&format!("{}:4: ", plan.display())),
        "{}",
        text(&bad)
    );
    assert_eq!(server.stats().requests, fetched);
}
