//! `--continent N`: `xearthlayer run` over N full-density packages, a
//! continent's worth (Europe is 500-700 Ortho4XP tiles, the contiguous US
//! over 800), through the union mount or one mount per package.
//!
//! The packages (one per 1° tile, `--per-tile` textures each, in rows 2°
//! of longitude apart so that no two name the same texture) are written
//! once into the work folder and kept for the next run (a marker file says
//! what is there). Then, for the service as a child process: the time until
//! every mount is up and until every texture is listed; resident memory
//! and threads; a `find` over every mount; a stat of every texture; 64 KiB
//! header reads (cold, from the local imagery server) of textures spread
//! over the set; and the time a SIGTERM takes to end it, with no mount left.

use std::collections::HashSet;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use xel_sim::{create_package, start_in_background, PackageSpec, ServerConfig};

use crate::procfs;
use crate::service::{Mount, ServiceProcess, ServiceSpec};
use crate::BenchResult;

/// Longitude step between packages of a row: wider than a block of 16
/// textures at ZL16, so neighbours share no texture.
const LON_STEP: i32 = 2;
/// Packages per row of latitude (40°N and up).
const PER_ROW: usize = 170;
/// Size of each DSF: small, the benchmark reads none.
const DSF_BYTES: usize = 16 * 1024;
/// Header reads spread over the set.
const HEADER_READS: usize = 32;
const HEADER_BYTES: usize = 64 * 1024;
/// How long the textures may take to be listed.
const VISIBLE_TIMEOUT: Duration = Duration::from_secs(300);

pub struct ContinentSettings {
    pub binary: PathBuf,
    pub root: PathBuf,
    pub packages: usize,
    pub per_tile: usize,
    pub union: bool,
    pub extra_args: Vec<String>,
}

/// What one run measured.
pub struct ContinentResult {
    pub textures: usize,
    pub mounts: usize,
    pub mounted: Duration,
    pub visible: Duration,
    pub rss_bytes: u64,
    pub threads: u64,
    pub find_entries: usize,
    pub find: Duration,
    pub stat: Duration,
    pub headers: Duration,
    pub stop: Duration,
}

/// The packages of `settings`, written unless already there; returns the
/// packages folder and the number of distinct textures.
fn packages(settings: &ContinentSettings) -> BenchResult<(PathBuf, usize)> {
    let dir = settings.root.join("packages");
    let marker = settings.root.join(format!(
        "packages-{}x{}.done",
        settings.packages, settings.per_tile
    ));
    if let Ok(text) = std::fs::read_to_string(&marker) {
        if let Ok(textures) = text.trim().parse() {
            return Ok((dir, textures));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let started = Instant::now();
    let mut names = HashSet::new();
    for i in 0..settings.packages {
        let lat = 40 + (i / PER_ROW) as i32;
        let lon = -170 + (i % PER_ROW) as i32 * LON_STEP;
        let package = create_package(
            &dir.join(format!("zOrtho4XP_{lat:+03}{lon:+04}")),
            &PackageSpec {
                lat: f64::from(lat) + 0.5,
                lon: f64::from(lon) + 0.5,
                textures: settings.per_tile,
                dsf_bytes: DSF_BYTES,
                ..PackageSpec::default()
            },
        )?;
        names.extend(package.textures.iter().map(|t| t.file_name()));
        if (i + 1) % 200 == 0 {
            eprintln!(
                "scene-bench: wrote {} packages ({:.0} s)",
                i + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    std::fs::write(&marker, names.len().to_string())?;
    Ok((dir, names.len()))
}

/// Names in `dir`, or none if it cannot be listed.
fn listed(dir: &Path) -> Vec<std::ffi::OsString> {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default()
}

pub fn run(settings: &ContinentSettings) -> BenchResult<ContinentResult> {
    let (packages_dir, textures) = packages(settings)?;
    let custom_scenery = settings.root.join("Custom Scenery");
    std::fs::create_dir_all(&custom_scenery)?;
    let mut names: Vec<String> = listed(&packages_dir)
        .into_iter()
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mountpoints: Vec<PathBuf> = if settings.union {
        vec![custom_scenery.join("zzXEL_ortho_xel")]
    } else {
        names
            .iter()
            .map(|n| custom_scenery.join(format!("{n}_xel")))
            .collect()
    };
    let server = start_in_background(ServerConfig::default())?;
    server.set_latency(Duration::from_millis(20), Duration::from_millis(5));
    let _ = std::fs::remove_dir_all(settings.root.join("cache"));
    let spec = ServiceSpec {
        binary: settings.binary.clone(),
        mount: Mount::All {
            packages: packages_dir,
            custom_scenery,
            mountpoints: mountpoints.clone(),
            union: settings.union,
        },
        url: server.url_template(),
        cache_dir: settings.root.join("cache"),
        memory_cache_bytes: 256 << 20,
        max_builds: None,
        extra_args: settings.extra_args.clone(),
        stats_file: settings.root.join("stats.txt"),
        log: settings.root.join("service.log"),
        config: settings.root.join("config.ini"),
    };
    eprintln!(
        "scene-bench: run over {} packages ({textures} textures), {} mounts",
        names.len(),
        mountpoints.len()
    );
    let started = Instant::now();
    let service = ServiceProcess::start(spec)?;
    let mounted = started.elapsed();
    let textures_dirs: Vec<PathBuf> = mountpoints.iter().map(|m| m.join("textures")).collect();
    let mut texture_paths: Vec<PathBuf>;
    loop {
        texture_paths = textures_dirs
            .iter()
            .flat_map(|dir| listed(dir).into_iter().map(move |n| dir.join(n)))
            .collect();
        if texture_paths.len() >= textures {
            break;
        }
        if started.elapsed() > VISIBLE_TIMEOUT {
            return Err(format!(
                "only {} of {textures} textures listed after {VISIBLE_TIMEOUT:?}",
                texture_paths.len()
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let visible = started.elapsed();
    let pid = service.pid();
    let rss_bytes = procfs::rss_bytes(pid)?;
    let threads = procfs::threads(pid)?;

    let find_started = Instant::now();
    let output = Command::new("find")
        .args(&mountpoints)
        .stderr(Stdio::inherit())
        .output()?;
    let find = find_started.elapsed();
    if !output.status.success() {
        return Err(format!("find over the mounts failed ({})", output.status).into());
    }
    let find_entries = output.stdout.iter().filter(|&&b| b == b'\n').count();

    let stat_started = Instant::now();
    for path in &texture_paths {
        let md = std::fs::metadata(path)?;
        if md.len() == 0 {
            return Err(format!("{} has no size", path.display()).into());
        }
    }
    let stat = stat_started.elapsed();

    texture_paths.sort();
    let step = (texture_paths.len() / HEADER_READS).max(1);
    let headers_started = Instant::now();
    let mut header = vec![0; HEADER_BYTES];
    for path in texture_paths.iter().step_by(step).take(HEADER_READS) {
        std::fs::File::open(path)?.read_exact_at(&mut header, 0)?;
        if &header[..4] != b"DDS " {
            return Err(format!("{} has no DDS header", path.display()).into());
        }
    }
    let headers = headers_started.elapsed();

    let rss_bytes = rss_bytes.max(procfs::rss_bytes(pid)?);
    let threads = threads.max(procfs::threads(pid)?);
    let stop_started = Instant::now();
    service.stop()?;
    let stop = stop_started.elapsed();
    for mountpoint in &mountpoints {
        if procfs::is_mounted(mountpoint)? {
            return Err(format!("{} left mounted", mountpoint.display()).into());
        }
    }
    Ok(ContinentResult {
        textures: texture_paths.len(),
        mounts: mountpoints.len(),
        mounted,
        visible,
        rss_bytes,
        threads,
        find_entries,
        find,
        stat,
        headers,
        stop,
    })
}

/// One Markdown table row for `result`.
pub fn markdown_row(label: &str, settings: &ContinentSettings, result: &ContinentResult) -> String {
    format!(
        "| {label} | {} | {} | {} | {} | {:.1} s | {:.1} s | {} MiB | {} | {} entries, {:.1} s | {:.1} s | {} in {:.1} s | {:.1} s, none left |",
        if settings.union { "union" } else { "per-package" },
        settings.packages,
        result.textures,
        result.mounts,
        result.mounted.as_secs_f64(),
        result.visible.as_secs_f64(),
        result.rss_bytes >> 20,
        result.threads,
        result.find_entries,
        result.find.as_secs_f64(),
        result.stat.as_secs_f64(),
        HEADER_READS,
        result.headers.as_secs_f64(),
        result.stop.as_secs_f64(),
    )
}
