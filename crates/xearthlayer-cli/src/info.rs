//! `xearthlayer info NAME.dds`: what a texture covers, which provider its
//! name maps to and why, and where its imagery comes from, without
//! downloading anything.

use clap::Args;
use xearthlayer::coord::TextureId;
use xearthlayer::dds::layout;

use crate::args::{CliResult, FormatArg, ProviderArgs};
use crate::config::ConfigArg;

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Texture file name, e.g. 25264_10368_BI16.dds.
    pub name: String,
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub provider: ProviderArgs,
    #[command(flatten)]
    pub format: FormatArg,
    /// Print all 256 chunk URLs (default: the first and last).
    #[arg(long)]
    pub all_urls: bool,
}

pub fn run(args: InfoArgs) -> CliResult {
    let id = TextureId::parse(&args.name)?;
    let file = args.config.load()?.settings;
    let providers = args.provider.providers(&file)?;
    let provider = providers.for_texture(&id);
    let format = args.format.format(&file);
    let b = id.bounds();
    let (lat, lon) = b.center();
    println!("texture   {id}");
    println!("zoom      {} (chunks), map type '{}'", id.zoom, id.map_type);
    println!(
        "chunks    x {}..{}, y {}..{}",
        id.col,
        id.col + 15,
        id.row,
        id.row + 15
    );
    println!(
        "bounds    N {:.6}  S {:.6}  W {:.6}  E {:.6}",
        b.north, b.south, b.west, b.east
    );
    println!("centre    {lat:.6} {lon:.6}");
    println!(
        "file      {} bytes ({}, 13 mip levels)",
        layout::file_size(format),
        format
    );
    println!("provider  {}", providers.explain(&id));
    println!(
        "limits    zooms {}..={}, {} requests in flight, disk cache folder '{}'",
        provider.zoom_range().start(),
        provider.max_zoom(),
        provider.max_in_flight(),
        provider.cache_key()
    );
    if id.zoom > provider.max_zoom() {
        println!(
            "warning   zoom {} is beyond what this provider serves",
            id.zoom
        );
    }
    let chunks: Vec<_> = id.chunks().collect();
    let shown: Vec<_> = if args.all_urls {
        chunks.iter().collect()
    } else {
        vec![&chunks[0], &chunks[chunks.len() - 1]]
    };
    for chunk in shown {
        println!("chunk     {chunk}  {}", provider.chunk_url(*chunk));
    }
    Ok(())
}
