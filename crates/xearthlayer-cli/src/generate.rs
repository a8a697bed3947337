//! `xearthlayer generate NAME.dds --output FILE`: one texture through the
//! whole engine (caches included), written to a file.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use xearthlayer::coord::TextureId;

use crate::args::{CliResult, ServiceArgs};

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Texture file name, e.g. 25264_10368_BI16.dds.
    pub name: String,
    /// Where to write the DDS file.
    #[arg(short, long)]
    pub output: PathBuf,
    #[command(flatten)]
    pub service: ServiceArgs,
}

pub async fn run(args: GenerateArgs) -> CliResult {
    let id = TextureId::parse(&args.name)?;
    let service = args.service.service()?;
    let started = Instant::now();
    let texture = service.texture(&id).await;
    service.flush().await;
    let metrics = service.metrics().snapshot();
    tokio::fs::write(&args.output, &texture.bytes)
        .await
        .map_err(|e| format!("cannot write {}: {e}", args.output.display()))?;
    println!(
        "wrote {} ({} bytes) in {:.2} s: {} chunk requests, {} disk cache hits{}",
        args.output.display(),
        texture.bytes.len(),
        started.elapsed().as_secs_f64(),
        metrics.chunk_requests,
        metrics.disk_hits,
        if texture.degraded {
            format!(
                ", {} chunks filled in (imagery missing)",
                metrics.chunks_filled
            )
        } else {
            String::new()
        }
    );
    Ok(())
}
