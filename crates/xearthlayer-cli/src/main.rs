//! `xearthlayer`: the command line. Parsing and output only; the work lives
//! in the `xearthlayer` library.

mod airports;
mod args;
mod cache_cmd;
mod config;
mod config_cmd;
mod demo;
mod demo_flight;
mod doctor;
mod files;
mod flight;
mod fms;
mod generate;
mod heap;
mod info;
mod log_file;
mod manager;
mod mount_model;
mod packages;
mod prefetch_cmd;
mod route;
mod run;
mod scenery_packs;
mod screen;
mod shutdown;
mod start;
mod status;
mod system;
mod xplane;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "xearthlayer",
    version,
    about = "Satellite orthophotos streamed into X-Plane"
)]
struct Cli {
    /// More logging (-v: debug, -vv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Offline demo: sample package, local imagery, real mount, X-Plane-like reads.
    Demo(demo::DemoArgs),
    /// Generate one texture and write it to a file.
    Generate(generate::GenerateArgs),
    /// Show a texture's bounds, zoom and chunk URLs.
    Info(info::InfoArgs),
    /// Mount one scenery package and serve its textures until Ctrl-C.
    Start(start::StartArgs),
    /// Mount every ortho package found, over one texture service, until Ctrl-C.
    Run(run::RunArgs),
    /// Write a commented configuration file.
    Init(config_cmd::InitArgs),
    /// Read or change the configuration file.
    Config(config_cmd::ConfigArgs),
    /// Disk cache statistics, or clear it.
    Cache(cache_cmd::CacheArgs),
    /// Fill the disk cache before a flight: around a point or airport, or along a flight plan.
    Prefetch(prefetch_cmd::PrefetchArgs),
    /// Check FUSE, permissions, mounts, the cache, X-Plane and the provider.
    Doctor(doctor::DoctorArgs),
}

#[tokio::main]
async fn main() {
    heap::limit_heap_growth();
    let cli = Cli::parse();
    let live_view = match &cli.command {
        Command::Start(args) => !args.no_tui,
        Command::Run(args) => !args.no_tui,
        _ => false,
    } && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let serving = matches!(cli.command, Command::Start(_) | Command::Run(_));
    // The demo prints its own story; its info logs would only clutter it.
    let quiet_stderr = live_view || matches!(cli.command, Command::Demo(_));
    let log_file = init_logging(cli.verbose, serving, quiet_stderr);
    // Many packages, connections and cache files at once: the usual soft
    // limit of 1024 descriptors is needlessly low.
    if let Err(e) = system::raise_open_file_limit() {
        tracing::debug!(error = %e, "cannot raise the open-file limit");
    }
    let result = match cli.command {
        Command::Demo(args) => demo::run(args).await,
        Command::Generate(args) => generate::run(args).await,
        Command::Info(args) => info::run(args),
        Command::Start(args) => start::run(args).await,
        Command::Run(args) => run::run(args).await,
        Command::Init(args) => config_cmd::init(args),
        Command::Config(args) => config_cmd::run(args),
        Command::Cache(args) => cache_cmd::run(args),
        Command::Prefetch(args) => prefetch_cmd::run(args).await,
        Command::Doctor(args) => doctor::run(args).await,
    };
    let code = match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    };
    // Exit here rather than by dropping the runtime: after a busy unmount,
    // readers that still hold files open keep the kernel connection alive
    // and a blocking thread waits on /dev/fuse forever. Exiting closes the
    // device, which fails their reads (ENOTCONN) instead of hanging them.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    // What the log file's thread still holds goes to disk first.
    drop(log_file);
    std::process::exit(code)
}

/// Logs to stderr, and for the serving commands also to
/// `~/.xearthlayer/xearthlayer.log` (see [`log_file`]; the guard returned
/// flushes it when dropped). With `quiet_stderr` (under the live status
/// view, so log lines do not tear the redrawn block) stderr only gets
/// warnings unless -v asks for more.
fn init_logging(
    verbose: u8,
    log_file: bool,
    quiet_stderr: bool,
) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::{fmt, EnvFilter, Layer as _};

    let default = match verbose {
        0 => "warn,xearthlayer=info",
        1 => "info,xearthlayer=debug",
        _ => "debug,xearthlayer=trace",
    };
    let filter =
        || EnvFilter::try_from_env("XEARTHLAYER_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let stderr_filter = if quiet_stderr && verbose == 0 {
        EnvFilter::new("warn")
    } else {
        filter()
    };
    // Log lines go above the live view's block, never under it.
    let stderr = fmt::layer()
        .with_writer(screen::LogToStderr)
        .with_filter(stderr_filter);
    let (file, guard) = log_file
        .then(|| log_file::open(&config::xearthlayer_dir()?).ok())
        .flatten()
        .map(|(writer, guard)| {
            let layer = fmt::layer()
                .with_ansi(false)
                .with_writer(writer)
                .with_filter(filter());
            (layer, guard)
        })
        .unzip();
    tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .init();
    guard
}
