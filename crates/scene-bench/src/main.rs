//! `scene-bench`: the scene-load benchmark. In one invocation it
//!
//! 1. writes a synthetic Ortho4XP-style package of N textures at ZL16;
//! 2. starts the local imagery server (latency with jitter, optionally a
//!    bandwidth cap) and `xearthlayer start` on a real FUSE mount, as a
//!    child process so `/proc` measures the service alone; a rehearsal
//!    burst first has the server encode every chunk, as a remote provider's
//!    work costs this machine nothing;
//! 3. replays an X-Plane-like burst with K readers (stat, 64 KiB header,
//!    then mips 4..12 or the whole file) in four runs: cold, disk-warm (a
//!    restarted service), hot (the same burst again), and cold with one
//!    texture part built at a time, the model this design replaces;
//! 4. prints a Markdown report, writes it into `BENCHMARKS.md` between its
//!    markers, and draws a PNG of textures completed over time.
//!
//! Build the service too: `cargo build --release -p xearthlayer-cli -p
//! scene-bench && target/release/scene-bench` (the `xearthlayer` binary is
//! looked for beside this one, or given with `--xearthlayer`).
//!
//! With `--flight` it flies instead: the simulated X-Plane cruises over a
//! grid of packages served by `xearthlayer run`, once per telemetry source,
//! and the report says how much of X-Plane's reads found their texture
//! ready (see [`flight`]).
//!
//! With `--continent N` it measures `xearthlayer run` over N full-density
//! packages instead: start-up, memory, threads, a `find`, a stat of every
//! texture, header reads and the stop (see [`continent`]).
//!
//! Modules: [`procfs`] (CPU, memory, mounts from /proc), [`service`] (the
//! child process), [`measure`] (one run), [`report`] (Markdown), [`chart`];
//! the scenarios [`faults`] (`--faults`) and [`memory`] (`--bursts N`).

mod chart;
mod continent;
mod faults;
mod flight;
mod measure;
mod memory;
mod procfs;
mod report;
mod service;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use xel_sim::burst::{run_burst, BurstConfig};
use xel_sim::{create_package, start_in_background, BackgroundServer, PackageSpec, ServerConfig};

use measure::{measure, wait_for_quiet_machine, RunKind, RunResult};
use report::Settings;
use service::{Mount, ServiceProcess, ServiceSpec};

/// Errors end the benchmark with a message; cleanup runs on the way out.
pub type BenchResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// Textures in the package unless `--textures` is given.
const TEXTURES: usize = 200;
const QUICK_TEXTURES: usize = 48;
/// Room in the imagery server's cache per texture: its 256 chunks, the
/// low-zoom one and stand-ins.
const CHUNKS_PER_TEXTURE_AT_MOST: usize = 400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Pattern {
    /// Header, then mips 4..12 for most textures, the whole file for a few.
    Default,
    /// Every texture read completely. Slow: the serialized run builds 16
    /// strips per texture one at a time; a hot run from memory needs
    /// --memory-cache-mib above 11 MiB per texture.
    Full,
}

#[derive(Parser, Debug)]
#[command(
    name = "scene-bench",
    about = "Scene-load benchmark: an X-Plane-like burst through a real XEarthLayer mount, \
             cold, disk-warm, hot and serialized"
)]
struct Args {
    /// An extra argument for every `xearthlayer start` (repeatable), e.g.
    /// `--service-arg=--whole-textures` for the baseline before the
    /// read-path economy.
    #[arg(long, allow_hyphen_values = true)]
    service_arg: Vec<String>,
    /// Leave out the serialized run.
    #[arg(long)]
    skip_serialized: bool,
    /// Textures in the synthetic package [default: 200, 48 with --quick].
    #[arg(long)]
    textures: Option<usize>,
    /// Concurrent readers, as X-Plane's loader threads.
    #[arg(long, default_value_t = 64)]
    readers: usize,
    /// Imagery server latency per chunk request.
    #[arg(long, default_value_t = 60)]
    latency_ms: u64,
    /// The latency varies uniformly by up to this much either way.
    #[arg(long, default_value_t = 20)]
    jitter_ms: u64,
    /// Link bandwidth all imagery answers share, in Mbit/s; 0 for none
    /// [default: 0, 100 with --flight].
    #[arg(long)]
    bandwidth_mbps: Option<f64>,
    /// Share of textures read completely in the default pattern (as one
    /// texture in round(1/share)).
    #[arg(long, default_value_t = 0.05)]
    full_share: f64,
    #[arg(long, value_enum, default_value_t = Pattern::Default)]
    pattern: Pattern,
    /// The one-minute version: 48 textures unless --textures; its results
    /// go under the label "quick".
    #[arg(long)]
    quick: bool,
    /// The Markdown file the results block is written into.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    /// The chart [default: docs/scene-bench.png beside --out, or
    /// docs/scene-bench-LABEL.png].
    #[arg(long)]
    chart: Option<PathBuf>,
    /// Names this configuration's block in --out [default: "default", or "quick"].
    #[arg(long)]
    label: Option<String>,
    /// The service's memory cache, in MiB.
    #[arg(long, default_value_t = 1024)]
    memory_cache_mib: u64,
    /// Latitude of the package's centre.
    #[arg(long, default_value_t = 47.5, allow_negative_numbers = true)]
    lat: f64,
    /// Longitude of the package's centre.
    #[arg(long, default_value_t = -5.6, allow_negative_numbers = true)]
    lon: f64,
    /// Zoom level of the textures.
    #[arg(long, default_value_t = 16)]
    zoom: u8,
    /// The xearthlayer binary [default: beside this one].
    #[arg(long, env = "XEARTHLAYER_BIN")]
    xearthlayer: Option<PathBuf>,
    /// Keep the package, caches, stats and service logs here [default: a
    /// temporary folder, removed at the end].
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Before each run, wait up to this long for the machine to be quiet
    /// (other processes under 15% busy); 0 to start at once.
    #[arg(long, default_value_t = 0)]
    wait_quiet_s: u64,
    /// A run that takes longer fails (the service is killed).
    #[arg(long, default_value_t = 600)]
    run_limit_s: u64,
    /// The fault scenario instead of the four runs: a burst while the
    /// provider stalls, 404s and hangs, then a healthy burst in the same
    /// service against a fresh one (see `faults.rs`). Label "faults".
    #[arg(long)]
    faults: bool,
    /// The flight scenario instead of the four runs: the simulated X-Plane
    /// cruises over a grid of packages served by `xearthlayer run`, once per
    /// telemetry source (see `flight/mod.rs`). Label "flight".
    #[arg(long)]
    flight: bool,
    /// Flight: textures per DSF tile.
    #[arg(long, default_value_t = 49)]
    per_tile: usize,
    /// Flight: how far the aircraft flies after the start-up load.
    #[arg(long, default_value_t = 285.0)]
    flight_km: f64,
    /// Flight: cruise speeds, knots (one flight per speed and source).
    #[arg(long, value_delimiter = ',', default_value = "250,450")]
    speeds: Vec<f64>,
    /// Flight: X-Plane's time compression (1 to 16).
    #[arg(long, default_value_t = 16.0)]
    time_compression: f64,
    /// Flight: telemetry sources to fly with.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "udp,webapi,inferred,none"
    )]
    sources: Vec<flight::Source>,
    /// The memory scenario instead of the four runs: this many bursts of
    /// --textures fresh textures each in one service, resident memory after
    /// each (see `memory.rs`). Label "memory".
    #[arg(long, default_value_t = 0)]
    bursts: usize,
    /// The continent scenario instead of the four runs: `run` over this
    /// many packages of --per-tile textures (see `continent.rs`). Label
    /// "continent-MODEL-USER".
    #[arg(long, default_value_t = 0)]
    continent: usize,
    /// Continent: serve through one mount per package instead of the union.
    #[arg(long)]
    per_package: bool,
    /// Varies the imagery server's latency draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scene-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The `xearthlayer` binary: given, or beside this one.
fn find_binary(given: Option<&Path>) -> BenchResult<PathBuf> {
    let path = match given {
        Some(path) => path.to_path_buf(),
        None => std::env::current_exe()?
            .parent()
            .ok_or("this binary has no folder")?
            .join("xearthlayer"),
    };
    if !path.is_file() {
        return Err(format!(
            "no xearthlayer binary at {}: build it with `cargo build --release -p xearthlayer-cli`, \
             or give --xearthlayer PATH",
            path.display()
        )
        .into());
    }
    Ok(path)
}

/// The package, caches and logs: a given folder, or a temporary one.
enum WorkDir {
    Kept(PathBuf),
    Temporary(tempfile::TempDir),
}

impl WorkDir {
    fn path(&self) -> &Path {
        match self {
            WorkDir::Kept(path) => path,
            WorkDir::Temporary(dir) => dir.path(),
        }
    }
}

fn run(args: &Args) -> BenchResult {
    if args.flight {
        return run_flight(args);
    }
    if args.continent > 0 {
        return run_continent(args);
    }
    let label = args.label.clone().unwrap_or_else(|| {
        if args.faults {
            "faults"
        } else if args.bursts > 0 {
            "memory"
        } else if args.quick {
            "quick"
        } else {
            "default"
        }
        .to_string()
    });
    let textures = args
        .textures
        .unwrap_or(if args.quick { QUICK_TEXTURES } else { TEXTURES });
    let full_every = match args.pattern {
        Pattern::Full => 1,
        Pattern::Default if args.full_share > 0.0 => {
            (1.0 / args.full_share).round().max(1.0) as usize
        }
        Pattern::Default => 0,
    };
    let binary = find_binary(args.xearthlayer.as_deref())?;
    let work = work_dir(args.work_dir.as_deref())?;
    let root = work.path();
    let package = create_package(
        &root.join("package"),
        &PackageSpec {
            lat: args.lat,
            lon: args.lon,
            zoom: args.zoom,
            textures: textures * args.bursts.max(1),
            ..PackageSpec::default()
        },
    )?;
    let mountpoint = root.join("mount");
    let bench = Bench {
        paths: package
            .textures
            .iter()
            .map(|t| mountpoint.join("textures").join(t.file_name()))
            .collect(),
        burst: BurstConfig {
            readers: args.readers,
            full_every,
            ..BurstConfig::default()
        },
        server: start_in_background(ServerConfig {
            seed: args.seed,
            ..ServerConfig::default()
        })?,
        service: ServiceSpec {
            binary: binary.clone(),
            mount: Mount::One {
                source: package.root.clone(),
                mountpoint,
            },
            url: String::new(),
            cache_dir: PathBuf::new(),
            memory_cache_bytes: args.memory_cache_mib << 20,
            max_builds: None,
            extra_args: args.service_arg.clone(),
            stats_file: PathBuf::new(),
            log: PathBuf::new(),
            config: root.join("config.ini"),
        },
        root: root.to_path_buf(),
        limit: Duration::from_secs(args.run_limit_s),
        wait_quiet: Duration::from_secs(args.wait_quiet_s),
        serialized: !args.skip_serialized,
    };
    eprintln!(
        "scene-bench: {textures} textures, {} readers, {} ms ± {} ms; service {}; work in {}",
        args.readers,
        args.latency_ms,
        args.jitter_ms,
        binary.display(),
        root.display()
    );
    let warmup = bench.rehearse(bench.paths.len())?;
    let bandwidth = mbps_to_bytes(args.bandwidth_mbps.unwrap_or(0.0));
    bench.server.set_latency(
        Duration::from_millis(args.latency_ms),
        Duration::from_millis(args.jitter_ms),
    );
    bench.server.set_bandwidth(bandwidth);
    if args.bursts > 0 {
        let bursts = bench.memory_runs(args.bursts, textures)?;
        let block = memory::markdown(&command_line(), &bursts, args.memory_cache_mib << 20);
        println!("{block}");
        report::write_block(&args.out, &label, &block)?;
        return Ok(());
    }
    if args.faults {
        let runs = bench.fault_runs(
            Duration::from_millis(args.latency_ms),
            Duration::from_millis(args.jitter_ms),
        )?;
        let command = command_line();
        let bound = args
            .service_arg
            .windows(2)
            .find(|w| w[0] == "--stall-window")
            .map_or("the default, 4 s".to_string(), |w| format!("{} s", w[1]));
        let block = faults::markdown(&command, &runs, &bound);
        println!("{block}");
        report::write_block(&args.out, &label, &block)?;
        return Ok(());
    }
    let runs = bench.runs()?;
    drop(bench);

    let chart = args.chart.clone().unwrap_or_else(|| {
        let name = match label.as_str() {
            "default" => "scene-bench.png".to_string(),
            other => format!("scene-bench-{other}.png"),
        };
        args.out.with_file_name("docs").join(name)
    });
    let title = format!(
        "XEarthLayer scene load: {textures} textures, {} readers, imagery {} ms ± {} ms",
        args.readers, args.latency_ms, args.jitter_ms
    );
    chart::draw(&chart, &title, &runs)?;
    let settings = Settings {
        label: label.clone(),
        command: command_line(),
        textures,
        zoom: args.zoom,
        readers: args.readers,
        latency_ms: args.latency_ms,
        jitter_ms: args.jitter_ms,
        bandwidth,
        pattern: format!("{:?}", args.pattern).to_lowercase(),
        full_share: if full_every == 0 {
            0.0
        } else {
            1.0 / full_every as f64
        },
        memory_cache_bytes: args.memory_cache_mib << 20,
        binary: relative_to_here(&binary),
        source: source_version(),
        warmup,
    };
    let block = report::markdown(
        &procfs::Machine::this(),
        &settings,
        &runs,
        &chart_link(&args.out, &chart),
    );
    println!("{block}");
    report::write_block(&args.out, &label, &block)?;
    eprintln!(
        "scene-bench: wrote {} and {}",
        args.out.display(),
        chart.display()
    );
    Ok(())
}

fn mbps_to_bytes(mbps: f64) -> u64 {
    (mbps.max(0.0) * 1e6 / 8.0) as u64
}

/// The work folder: given (kept), or a new temporary one.
fn work_dir(given: Option<&Path>) -> BenchResult<WorkDir> {
    Ok(match given {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            WorkDir::Kept(std::path::absolute(dir)?)
        }
        None => WorkDir::Temporary(tempfile::Builder::new().prefix("scene-bench-").tempdir()?),
    })
}

/// `--flight`: the flight benchmark.
fn run_flight(args: &Args) -> BenchResult {
    if !(1.0..=16.0).contains(&args.time_compression) || args.per_tile == 0 {
        return Err("--time-compression must be 1 to 16 and --per-tile at least 1".into());
    }
    let work = work_dir(args.work_dir.as_deref())?;
    let settings = flight::FlightSettings {
        binary: find_binary(args.xearthlayer.as_deref())?,
        root: work.path().to_path_buf(),
        per_tile: args.per_tile,
        distance_km: args.flight_km,
        speeds_kt: args.speeds.clone(),
        time_compression: args.time_compression,
        sources: args.sources.clone(),
        latency: Duration::from_millis(args.latency_ms),
        jitter: Duration::from_millis(args.jitter_ms),
        bandwidth: mbps_to_bytes(args.bandwidth_mbps.unwrap_or(100.0)),
        readers: args.readers,
        memory_cache_bytes: args.memory_cache_mib << 20,
        extra_args: args.service_arg.clone(),
        seed: args.seed,
    };
    let label = args.label.as_deref().unwrap_or("flight");
    let chart = args.chart.clone().unwrap_or_else(|| {
        let name = match label {
            "flight" => "scene-bench-flight.png".to_string(),
            other => format!("scene-bench-{other}.png"),
        };
        args.out.with_file_name("docs").join(name)
    });
    flight::run(&settings, label, &args.out, &chart, &command_line())
}

fn run_continent(args: &Args) -> BenchResult {
    let work = work_dir(args.work_dir.as_deref())?;
    let settings = continent::ContinentSettings {
        binary: find_binary(args.xearthlayer.as_deref())?,
        root: work.path().to_path_buf(),
        packages: args.continent,
        per_tile: args.per_tile,
        union: !args.per_package,
        extra_args: args.service_arg.clone(),
    };
    // SAFETY: geteuid has no preconditions.
    let user = if unsafe { libc::geteuid() } == 0 {
        "root"
    } else {
        "user"
    };
    let model = if settings.union {
        "union"
    } else {
        "per-package"
    };
    let label = args
        .label
        .clone()
        .unwrap_or_else(|| format!("continent-{model}-{user}"));
    let result = continent::run(&settings)?;
    let block = format!(
        "`{}` (as {user}, {})\n\n\
         | run | mount | packages | textures | mounts | mounted | all textures listed | RSS | threads | find | stat every texture | header reads (cold) | SIGTERM to exit |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n\
         {}\n",
        command_line(),
        {
            let machine = procfs::Machine::this();
            format!(
                "{} cores, {} GiB, {}, Linux {}",
                machine.cores,
                machine.memory_bytes >> 30,
                machine.cpu_model,
                machine.kernel
            )
        },
        continent::markdown_row(&label, &settings, &result)
    );
    println!("{block}");
    report::write_block(&args.out, &label, &block)?;
    Ok(())
}

/// What every run shares: the textures and how they are read, the one
/// imagery server, and how the service is started.
struct Bench {
    paths: Vec<PathBuf>,
    burst: BurstConfig,
    server: BackgroundServer,
    /// Per run, the URL, caches, stats and log are filled in.
    service: ServiceSpec,
    root: PathBuf,
    limit: Duration,
    wait_quiet: Duration,
    /// Whether to add the serialized baseline run.
    serialized: bool,
}

impl Bench {
    /// Starts the service with its files named after `name`.
    fn start(
        &self,
        name: &str,
        cache: &str,
        max_builds: Option<usize>,
    ) -> BenchResult<ServiceProcess> {
        ServiceProcess::start(ServiceSpec {
            url: self.server.url_template(),
            cache_dir: self.root.join(cache),
            max_builds,
            stats_file: self.root.join(format!("stats-{name}.txt")),
            log: self.root.join(format!("service-{name}.log")),
            ..self.service.clone()
        })
    }

    /// A burst (no latency, its own service and caches, not measured) that
    /// has the server encode every chunk the runs will ask for, so that they
    /// spend none of this machine's CPU on JPEG encoding: that is a remote
    /// provider's work. Returns the chunks encoded and the time taken.
    fn rehearse(&self, textures: usize) -> BenchResult<(u64, Duration)> {
        let started = Instant::now();
        self.server
            .set_cache_entries(textures * CHUNKS_PER_TEXTURE_AT_MOST);
        let service = self.start("rehearsal", "cache-rehearsal", None)?;
        run_burst(&self.paths, &self.burst)
            .map_err(|e| format!("the rehearsal burst failed: {e}"))?;
        service.stop()?;
        std::fs::remove_dir_all(self.root.join("cache-rehearsal"))?;
        let warmup = (self.server.stats().requests, started.elapsed());
        eprintln!(
            "scene-bench: rehearsal: the imagery server encoded {} chunks in {:.1} s",
            warmup.0,
            warmup.1.as_secs_f64()
        );
        Ok(warmup)
    }

    /// Cold from empty caches; a restart on the same disk cache, whose
    /// second burst is served from memory; then the serialized baseline on
    /// new caches, one texture part at a time.
    fn runs(&self) -> BenchResult<Vec<RunResult>> {
        let mut runs = Vec::new();
        let mut service = self.start("cold", "cache", None)?;
        runs.push(self.measure(RunKind::Cold, &mut service)?);
        service.stop()?;
        let mut service = self.start("warm", "cache", None)?;
        runs.push(self.measure(RunKind::DiskWarm, &mut service)?);
        runs.push(self.measure(RunKind::Hot, &mut service)?);
        service.stop()?;
        if self.serialized {
            let mut service = self.start("serialized", "cache-serialized", Some(1))?;
            runs.push(self.measure(RunKind::Serialized, &mut service)?);
            service.stop()?;
        }
        Ok(runs)
    }

    fn measure(&self, kind: RunKind, service: &mut ServiceProcess) -> BenchResult<RunResult> {
        if !self.wait_quiet.is_zero() && !wait_for_quiet_machine(self.wait_quiet)? {
            eprintln!(
                "scene-bench: the machine is still busy after {:?}; the {} run starts anyway",
                self.wait_quiet,
                kind.label()
            );
        }
        let result = measure(
            kind,
            service,
            &self.server,
            &self.paths,
            &self.burst,
            self.limit,
        )?;
        eprintln!(
            "scene-bench: {}: {} textures in {:.2} s",
            kind.label(),
            result.textures,
            result.wall.as_secs_f64()
        );
        Ok(result)
    }
}

/// This invocation, for the record.
fn command_line() -> String {
    std::iter::once("scene-bench".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `path` relative to the current folder where it is inside it.
fn relative_to_here(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|here| path.strip_prefix(here).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

/// The git commit of the current folder, noting uncommitted changes; `None`
/// outside a repository or without git.
fn source_version() -> Option<String> {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--short", "HEAD"])?;
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty {
        format!("{commit} with uncommitted changes")
    } else {
        commit
    })
}

/// The chart's path as the Markdown file links it: relative to its folder
/// where possible.
pub(crate) fn chart_link(out: &Path, chart: &Path) -> String {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let base = absolute(out)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let chart = absolute(chart);
    chart
        .strip_prefix(&base)
        .unwrap_or(&chart)
        .display()
        .to_string()
}
