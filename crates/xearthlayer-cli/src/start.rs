//! `xearthlayer start --source DIR`: mount one scenery package with its
//! textures served on demand, until SIGINT, SIGTERM or SIGHUP (see
//! [`crate::shutdown`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use xearthlayer::fs::OverlayFs;
use xearthlayer::fuse::{self, MountConfig, MountSession};
use xearthlayer::texture::TextureService;

use crate::args::{CliResult, ServiceArgs};
use crate::shutdown::Signals;
use crate::status;

#[derive(Args, Debug)]
pub struct StartArgs {
    /// The scenery package to overlay (holds terrain/*.ter).
    #[arg(long)]
    pub source: PathBuf,
    /// Where to mount (default: <source>_xel beside the source).
    #[arg(long)]
    pub mountpoint: Option<PathBuf>,
    /// Let other users (X-Plane run as another user) read the mount; needs
    /// user_allow_other in /etc/fuse.conf when not root.
    #[arg(long)]
    pub allow_other: bool,
    #[command(flatten)]
    pub stats_file: status::StatsFileArg,
    /// Plain periodic log lines instead of the live view in a terminal.
    #[arg(long)]
    pub no_tui: bool,
    #[command(flatten)]
    pub telemetry: crate::flight::TelemetryArg,
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// `<source>_xel` beside the source.
pub fn default_mountpoint(source: &Path) -> PathBuf {
    let mut name = source.file_name().unwrap_or_default().to_os_string();
    name.push("_xel");
    source.with_file_name(name)
}

/// Mounts `source` over `service`; the caller owns the session. The
/// filesystem core comes back too, for its counters.
pub async fn mount_package(
    source: &Path,
    mountpoint: &Path,
    service: TextureService,
    allow_other: bool,
) -> CliResult<(MountSession, Arc<OverlayFs<TextureService>>)> {
    if !source.is_dir() {
        return Err(format!(
            "source {} is not a directory: give the scenery package folder (the one holding terrain/)",
            source.display()
        )
        .into());
    }
    let root = source.to_path_buf();
    // Indexing reads every .ter file: blocking work.
    let fs = tokio::task::spawn_blocking(move || OverlayFs::new(root, service)).await??;
    let config = MountConfig {
        allow_other,
        ..MountConfig::default()
    };
    let fs = Arc::new(fs);
    let session = fuse::mount_shared(Arc::clone(&fs), mountpoint, &config).await?;
    Ok((session, fs))
}

pub async fn run(args: StartArgs) -> CliResult {
    let source = std::path::absolute(&args.source)?;
    let mountpoint = match &args.mountpoint {
        Some(m) => std::path::absolute(m)?,
        None => default_mountpoint(&source),
    };
    let mut signals = Signals::install();
    let service = args.service.service()?;
    // Before mounting: whoever signals once the mount is up must find the handler.
    let stats = args.stats_file.start(&service)?;
    let (mut session, fs) =
        mount_package(&source, &mountpoint, service.clone(), args.allow_other).await?;
    println!(
        "mounted {} at {} ({}, textures from {}); Ctrl-C to stop",
        source.display(),
        mountpoint.display(),
        service.format(),
        service.providers().describe()
    );
    if let Some(stats) = &stats {
        stats.set_mounts(vec![Arc::clone(&fs)]);
    }
    let file = args.service.config.load()?.settings;
    let prefetch = crate::flight::start_with_status(
        &args.telemetry.spec(&file),
        &service,
        &[Arc::clone(&fs)],
        stats.as_ref(),
    );
    let view = vec![status::MountView {
        mountpoint: mountpoint.clone(),
        fs,
    }];
    let trimmer = crate::heap::spawn_trimmer(service.clone());
    let reporter = status::spawn_reporter(
        service.clone(),
        view,
        !args.no_tui,
        crate::flight::status_lines(prefetch.as_ref()),
    );
    let ended_by_itself = tokio::select! {
        signal = signals.next() => {
            println!("{signal}: unmounting {}", mountpoint.display());
            false
        }
        result = session.wait() => {
            result?;
            println!("{} was unmounted", mountpoint.display());
            true
        }
    };
    signals.force_on_next(vec![session.mountpoint().to_path_buf()]);
    reporter.stop();
    trimmer.abort();
    drop(prefetch);
    if !ended_by_itself {
        session.unmount().await?;
    }
    service.flush().await;
    println!("{}", status::summary(&service));
    if let Some(stats) = stats {
        stats.write().await?;
    }
    Ok(())
}
