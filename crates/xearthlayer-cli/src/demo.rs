//! `xearthlayer demo`: the whole product, offline, in under a minute.
//!
//! Makes a small Ortho4XP-style package, serves synthetic imagery from a
//! local server on 127.0.0.1 (with network-like latency), mounts the package
//! with the same machinery as `start`, then reads its textures the way
//! X-Plane does: a stat and a header read for each, the low mip levels for
//! most, the whole file for some, many at once. It does that cold and again
//! warm, prints what it measured, and writes a PNG preview of one texture
//! as read back from the mount. Then the simulated X-Plane flies a short
//! flight over a grid of packages with prefetch on ([`crate::demo_flight`]),
//! and the demo unmounts (or stays mounted with `--keep`).
//! Ctrl-C or SIGTERM at any step, or a failed step, still unmounts. The
//! preview is left where the user can open it: in `--dir`, else in
//! `~/.xearthlayer/demo/` (the working folder is temporary).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use xearthlayer::dds::layout::{self, DdsFormat};
use xearthlayer::fs::OverlayFs;
use xearthlayer::fuse::{self, MountConfig};
use xearthlayer::metrics::MetricsSnapshot;
use xearthlayer::provider::TemplateProvider;
use xearthlayer::texture::{ServiceConfig, TextureService};
use xel_sim::burst::{run_burst_with, BurstConfig, BurstReport, TextureRead};
use xel_sim::package::{create_package, PackageSpec, SamplePackage};
use xel_sim::server::{ImageryServer, ServerConfig};
use xel_sim::verify::decode_level;

use crate::args::CliResult;
use crate::config::xearthlayer_dir;
use crate::shutdown::shutdown_signal;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Textures in the sample package.
    #[arg(long, default_value_t = 48)]
    pub textures: usize,
    /// Simulated network latency per chunk, in milliseconds.
    #[arg(long, default_value_t = 40)]
    pub latency_ms: u64,
    /// Concurrent readers, like X-Plane's loader threads.
    #[arg(long, default_value_t = 32)]
    pub readers: usize,
    /// Working folder, kept at the end (default: a new temporary folder,
    /// removed at the end; the preview then goes to ~/.xearthlayer/demo/).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Stay mounted after the demo until Ctrl-C, to browse the mount.
    #[arg(long)]
    pub keep: bool,
}

pub async fn run(args: DemoArgs) -> CliResult {
    if args.textures == 0 || args.readers == 0 {
        return Err("--textures and --readers must be at least 1".into());
    }
    // Installed before anything is mounted, so that Ctrl-C always finds it.
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let temp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            std::path::absolute(d)?
        }
        None => {
            temp = TempDir::new()?;
            temp.0.clone()
        }
    };
    let preview = match &args.dir {
        Some(_) => dir.join("preview.png"),
        None => preview_dir()?.join("preview.png"),
    };
    let spec = PackageSpec {
        textures: args.textures,
        ..PackageSpec::default()
    };
    let package_dir = dir.join("zOrtho4XP_+47-006");
    let package = {
        let (dir, spec) = (package_dir.clone(), spec.clone());
        tokio::task::spawn_blocking(move || create_package(&dir, &spec)).await??
    };
    println!(
        "1. made a sample package: {} textures at ZL{} near {:.1}, {:.1} in {}{}",
        package.textures.len(),
        spec.zoom,
        spec.lat,
        spec.lon,
        package.root.display(),
        if args.dir.is_some() {
            ""
        } else {
            " (temporary)"
        }
    );

    let latency = Duration::from_millis(args.latency_ms);
    let server = ImageryServer::start(ServerConfig {
        latency,
        jitter: latency / 4,
        ..ServerConfig::default()
    })
    .await?;
    println!(
        "2. local imagery server on {} ({} ms latency per chunk)",
        server.addr(),
        args.latency_ms
    );

    let provider = Arc::new(TemplateProvider::custom(&server.url_template())?);
    let service = TextureService::new(
        provider,
        ServiceConfig {
            disk_cache: Some((dir.join("cache"), 4 << 30)),
            ..ServiceConfig::default()
        },
    )?;
    let mountpoint = dir.join("zOrtho4XP_+47-006_xel");
    let fs = {
        let (root, service) = (package.root.clone(), service.clone());
        tokio::task::spawn_blocking(move || OverlayFs::new(root, service)).await??
    };
    let session = fuse::mount(fs, &mountpoint, &MountConfig::default()).await?;
    println!("3. mounted at {}", mountpoint.display());

    let shown = show(
        &args,
        &package,
        &mountpoint,
        &service,
        &server,
        &preview,
        &mut shutdown,
    )
    .await;
    let flown = match &shown {
        Ok(()) => tokio::select! {
            flown = crate::demo_flight::fly(&dir, &server) => flown,
            name = &mut shutdown => Err(format!("{name} during the flight").into()),
        },
        Err(_) => Ok(()),
    };
    if shown.is_ok() && flown.is_ok() && args.keep {
        println!(
            "\nStill mounted: browse {} (Ctrl-C to unmount and exit)",
            mountpoint.display()
        );
        (&mut shutdown).await;
    }
    // Whatever happened above, the mount goes.
    let unmounted = session.unmount().await;
    service.flush().await;
    shown?;
    flown?;
    unmounted?;
    println!("6. unmounted; demo complete");
    println!("   preview: {}", preview.display());
    if args.dir.is_some() {
        println!("   files kept in {}", dir.display());
    }
    Ok(())
}

/// Where the preview goes when the working folder is temporary:
/// `~/.xearthlayer/demo/`, else the current folder.
fn preview_dir() -> CliResult<PathBuf> {
    let dir = match xearthlayer_dir() {
        Some(dir) => dir.join("demo"),
        None => std::env::current_dir()?,
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("cannot create {} for the preview: {e}", dir.display()))?;
    Ok(dir)
}

/// Step 4: the reads, cold then warm, the summary and the preview; a
/// signal stops it after the reads in flight.
async fn show(
    args: &DemoArgs,
    package: &SamplePackage,
    mountpoint: &Path,
    service: &TextureService,
    server: &ImageryServer,
    preview: &Path,
    shutdown: &mut (impl Future<Output = &'static str> + Unpin),
) -> CliResult {
    let paths: Vec<PathBuf> = package
        .textures
        .iter()
        .map(|t| mountpoint.join("textures").join(t.file_name()))
        .collect();
    let burst = BurstConfig {
        readers: args.readers,
        full_every: 8,
        format: service.format(),
        ..BurstConfig::default()
    };
    println!(
        "4. reading {} textures as X-Plane does ({} readers; stat + 64 KiB header each, \
         low mip levels for most, every 8th in full)",
        paths.len(),
        args.readers
    );
    let before = service.metrics().snapshot();
    let cold = read_with_progress("cold", &paths, &burst, shutdown).await?;
    let after_cold = service.metrics().snapshot();
    let cold_requests = server.stats();
    let warm = read_with_progress("warm", &paths, &burst, shutdown).await?;
    let after_warm = service.metrics().snapshot();

    write_preview(&paths[0], service.format(), preview).await?;

    print_summary(
        &cold,
        &warm,
        &before,
        &after_cold,
        &after_warm,
        cold_requests.peak_in_flight,
    );
    println!(
        "   preview of {} (mip 2, read back from the mount): {}",
        package.textures[0],
        preview.display()
    );
    Ok(())
}

/// Runs one burst on a blocking thread while a progress bar follows it. On
/// a signal the burst still finishes before it returns: the
/// readers are threads of this process, and a read the mount never answers
/// would keep the process from ever exiting (its threads would wait on the
/// kernel for our own FUSE session).
async fn read_with_progress(
    label: &str,
    paths: &[PathBuf],
    config: &BurstConfig,
    shutdown: &mut (impl Future<Output = &'static str> + Unpin),
) -> CliResult<BurstReport> {
    let bar = indicatif::ProgressBar::new(paths.len() as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "   {prefix:>5} [{bar:40}] {pos}/{len} textures {elapsed}",
        )
        .map_err(|e| e.to_string())?
        .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    let (paths, config, progress) = (paths.to_vec(), config.clone(), bar.clone());
    let mut burst = tokio::task::spawn_blocking(move || {
        run_burst_with(&paths, &config, |_: &TextureRead| progress.inc(1))
    });
    let report = tokio::select! {
        done = &mut burst => done??,
        signal = shutdown => {
            println!("\n{signal}: letting this pass of reads finish, then unmounting");
            // The mount keeps serving meanwhile; the reads never fail, and
            // each texture has a time budget, so this ends.
            let _ = burst.await;
            bar.abandon();
            return Err(format!("{signal}: demo stopped").into());
        }
    };
    bar.finish();
    Ok(report)
}

fn print_summary(
    cold: &BurstReport,
    warm: &BurstReport,
    before: &MetricsSnapshot,
    after_cold: &MetricsSnapshot,
    after_warm: &MetricsSnapshot,
    peak_requests: u64,
) {
    let n = cold.reads.len() as f64;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("\nSummary");
    println!(
        "   cold: {:.2} s for {} textures ({:.0} textures/s), per texture p50 {:.0} ms, p95 {:.0} ms",
        cold.wall.as_secs_f64(),
        cold.reads.len(),
        n / cold.wall.as_secs_f64(),
        ms(cold.percentile(50.0)),
        ms(cold.percentile(95.0)),
    );
    println!(
        "   warm: {:.2} s ({:.0} textures/s), per texture p50 {:.1} ms",
        warm.wall.as_secs_f64(),
        n / warm.wall.as_secs_f64(),
        ms(warm.percentile(50.0)),
    );
    println!(
        "   cold: {} chunk requests ({:.1} per texture), peak {} requests and {} textures in flight",
        after_cold.chunk_requests - before.chunk_requests,
        (after_cold.chunk_requests - before.chunk_requests) as f64 / n,
        peak_requests,
        after_cold.peak_generations_in_flight,
    );
    println!(
        "   built {:.1} MiB of texture for {:.1} MiB read (a whole texture is {:.1} MiB)",
        after_cold.bytes_produced as f64 / 1048576.0,
        cold.bytes() as f64 / 1048576.0,
        layout::file_size(DdsFormat::Bc1) as f64 / 1048576.0,
    );
    println!(
        "   warm: {} reads served from memory, {} new chunk requests",
        after_warm.memory_hits - after_cold.memory_hits,
        after_warm.chunk_requests - after_cold.chunk_requests,
    );
}

/// Reads mip 2 of a texture through the mount and saves it as a PNG.
async fn write_preview(texture: &Path, format: DdsFormat, out: &Path) -> CliResult {
    let (texture, out) = (texture.to_path_buf(), out.to_path_buf());
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let bytes = std::fs::read(&texture)?;
        let level = 2;
        let side = layout::level_pixels(level);
        let rgba = decode_level(&bytes, format, level);
        let file = std::io::BufWriter::new(std::fs::File::create(&out)?);
        let mut encoder = png::Encoder::new(file, side, side);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        encoder
            .write_header()
            .and_then(|mut w| w.write_image_data(&rgba))
            .map_err(std::io::Error::other)
    })
    .await??;
    Ok(())
}

/// A temporary folder removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        let path = std::env::temp_dir().join(format!("xearthlayer-demo-{}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
