//! `xearthlayer prefetch --source PKG (--around LAT,LON | --airport ICAO |
//! --fms FILE) --radius KM`: fills the disk cache before a flight with what
//! X-Plane's loads read of each texture near a point, an airport or a flight
//! plan's legs (the header and the levels its distance needs), nearest first
//! or in route order, with a progress bar, an estimate of the download and a
//! size limit. Resumable: what is already on disk is loaded, not downloaded
//! again.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{ArgGroup, Args};
use indicatif::{ProgressBar, ProgressStyle};
use xearthlayer::fs::TextureIndex;
use xearthlayer::prefetch::{ranges, Catalog, CatalogTexture, IndexCatalog};

use crate::args::{parse_size, CliResult, ServiceArgs};
use crate::{airports, fms, route, xplane};

/// Textures prefetched at once.
const IN_FLIGHT: usize = 32;
/// Typical size of one downloaded 256 px chunk, for the estimate.
const CHUNK_BYTES: u64 = 14 << 10;

/// Radius around a point or airport when none is given, km.
const AREA_RADIUS_KM: f64 = 50.0;
/// Radius either side of a flight plan's legs when none is given, km.
const ROUTE_RADIUS_KM: f64 = 20.0;

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("place").required(true).args(["around", "airport", "fms"])))]
pub struct PrefetchArgs {
    /// Scenery package(s) whose textures to prefetch (repeat for several).
    #[arg(long, required = true)]
    pub source: Vec<PathBuf>,
    /// Centre of the area, as LAT,LON in degrees.
    #[arg(long, value_parser = parse_point)]
    pub around: Option<(f64, f64)>,
    /// Centre the area on this airport, found in X-Plane's apt.dat files.
    #[arg(long, value_name = "ICAO")]
    pub airport: Option<String>,
    /// Along this X-Plane flight plan (.fms, as SimBrief exports), in route order.
    #[arg(long, value_name = "FILE")]
    pub fms: Option<PathBuf>,
    /// Radius in km around the point, or either side of the legs [default:
    /// 50 for an area, 20 along a flight plan].
    #[arg(long)]
    pub radius: Option<f64>,
    /// X-Plane's Custom Scenery folder, for --airport [config:
    /// xplane.custom_scenery; default: found from ~/.x-plane/x-plane_install_12.txt].
    #[arg(long)]
    pub custom_scenery: Option<PathBuf>,
    /// Stop planning once the estimated download reaches this, e.g. 2GiB.
    #[arg(long, value_parser = parse_size)]
    pub max_size: Option<u64>,
    #[command(flatten)]
    pub service: ServiceArgs,
}

fn parse_point(s: &str) -> Result<(f64, f64), String> {
    let bad = || format!("{s:?}: expected LAT,LON in degrees, e.g. 47.5,-5.6");
    let (lat, lon) = s.split_once(',').ok_or_else(bad)?;
    let (lat, lon): (f64, f64) = (
        lat.trim().parse().map_err(|_| bad())?,
        lon.trim().parse().map_err(|_| bad())?,
    );
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        return Err(bad());
    }
    Ok((lat, lon))
}

/// Chunks a texture read from `first_level` on costs at most: the header
/// read's top row of 16, and (16/2^k)² for each level k from the first read
/// down to 4 (levels 5..12 come from the level-4 chunk).
fn chunks_for(first_level: u8) -> u64 {
    16 + (first_level..=4).map(|k| (16u64 >> k).pow(2)).sum::<u64>()
}

/// The route to prefetch along (one point for an area), its radius in km and
/// how to name it.
async fn place(args: &PrefetchArgs) -> CliResult<(Vec<(f64, f64)>, f64, String)> {
    let radius = |default: f64| args.radius.unwrap_or(default);
    if let Some(file) = &args.fms {
        let shown = file.display().to_string();
        let file = file.clone();
        let plan = tokio::task::spawn_blocking(move || fms::read(&file)).await??;
        let name = format!(
            "the {} legs of {shown} ({} to {})",
            plan.len() - 1,
            plan[0].ident,
            plan[plan.len() - 1].ident
        );
        let route = plan.iter().map(|w| (w.lat, w.lon)).collect();
        return Ok((route, radius(ROUTE_RADIUS_KM), name));
    }
    if let Some(icao) = &args.airport {
        let config = args.service.config.load()?;
        let scenery = xplane::custom_scenery(
            args.custom_scenery.as_deref(),
            &config.settings,
            &config.path,
        )?;
        let files = airports::apt_dat_files(scenery.xplane_root());
        let icao = icao.to_uppercase();
        let name = icao.clone();
        let point = tokio::task::spawn_blocking(move || airports::find(&icao, &files)).await??;
        let name = format!("{name} ({:.4},{:.4})", point.0, point.1);
        return Ok((vec![point], radius(AREA_RADIUS_KM), name));
    }
    let point = args.around.ok_or("give --around, --airport or --fms")?;
    let name = format!("{:.4},{:.4}", point.0, point.1);
    Ok((vec![point], radius(AREA_RADIUS_KM), name))
}

pub async fn run(args: PrefetchArgs) -> CliResult {
    let (route, radius_km, place_name) = place(&args).await?;
    if !(radius_km > 0.0 && radius_km.is_finite()) {
        return Err(format!("--radius {radius_km}: expected a distance in km above 0").into());
    }
    let service = args.service.service()?;
    let format = service.format();
    let sources = args.source.clone();
    let indexes = tokio::task::spawn_blocking(move || {
        sources
            .iter()
            .map(|s| TextureIndex::build(s).map_err(|e| format!("{}: {e}", s.display())))
            .collect::<Result<Vec<_>, _>>()
    })
    .await??;
    let catalog = IndexCatalog::new(&indexes);
    let textures: Vec<CatalogTexture> = catalog
        .tiles()
        .into_iter()
        .flat_map(|tile| catalog.textures_in_tile(tile).to_vec())
        .collect();
    let mut jobs = route::textures_along(&route, radius_km * 1000.0, &textures);
    let mut estimate = 0u64;
    let limit = args.max_size.unwrap_or(u64::MAX);
    let mut planned = 0;
    for (distance, _) in &jobs {
        let cost = chunks_for(ranges::first_level(*distance)) * CHUNK_BYTES;
        if estimate + cost > limit {
            break;
        }
        estimate += cost;
        planned += 1;
    }
    let skipped = jobs.len() - planned;
    jobs.truncate(planned);
    println!(
        "{} textures within {radius_km} km of {place_name}; at most {} MiB to download{}",
        jobs.len(),
        estimate >> 20,
        if skipped > 0 {
            format!(" ({skipped} more left out by --max-size)")
        } else {
            String::new()
        }
    );
    let bar = ProgressBar::new(jobs.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} textures, {elapsed} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    for (distance, id) in jobs {
        // The slot is taken before the task exists: at most IN_FLIGHT tasks.
        let permit = Arc::clone(&slots).acquire_owned().await?;
        let (service, bar) = (service.clone(), bar.clone());
        tasks.spawn(async move {
            for range in ranges::ranges(format, distance) {
                service.prefetch(&id, range).await;
            }
            bar.inc(1);
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    bar.finish();
    service.flush().await;
    let m = service.metrics().snapshot();
    println!(
        "done: {} chunks downloaded ({} MiB), {} textures found on disk",
        m.chunk_requests,
        m.chunk_bytes >> 20,
        m.disk_hits
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_and_chunk_costs() {
        assert_eq!(parse_point("47.5, -5.6"), Ok((47.5, -5.6)));
        assert!(parse_point("47.5").is_err() && parse_point("95,0").is_err());
        assert_eq!(chunks_for(4), 17);
        assert_eq!(chunks_for(0), 16 + 256 + 64 + 16 + 4 + 1);
    }
}
