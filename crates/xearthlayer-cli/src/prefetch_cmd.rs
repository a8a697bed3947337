//! `xearthlayer prefetch --source PKG (--around LAT,LON | --airport ICAO |
//! --fms FILE) --radius KM`: fills the disk cache before a flight with what
//! X-Plane's loads read of each texture near a point, an airport or a flight
//! plan's legs (the header and the levels its distance needs), nearest first
//! or in route order, with a progress bar, an estimate of the download and a
//! size limit. Resumable: what is already on disk is not downloaded again,
//! and neither counts in the estimate nor against the limit, so a run again
//! with the same limit extends the cache. A texture the provider failed is
//! counted, and fails the run (a run again retries it).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{ArgGroup, Args};
use futures_util::stream::{self, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use xearthlayer::coord::TextureId;
use xearthlayer::fs::TextureIndex;
use xearthlayer::prefetch::{ranges, Catalog, CatalogTexture, IndexCatalog};
use xearthlayer::texture::TextureService;

use crate::args::{parse_size, CliResult, ServiceArgs};
use crate::{airports, fms, route, xplane};

/// Textures prefetched at once.
const IN_FLIGHT: usize = 32;
/// Disk cache files read at once while planning.
const PLANNED_AT_ONCE: usize = 8;
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
    let jobs = route::textures_along(&route, radius_km * 1000.0, &textures);
    let plan = plan(&service, jobs, args.max_size.unwrap_or(u64::MAX)).await;
    println!(
        "{} textures within {radius_km} km of {place_name}: {} already cached, {} to fetch, \
         at most {} chunks ({} MiB) to download{}",
        plan.cached + plan.jobs.len() + plan.left_out,
        plan.cached,
        plan.jobs.len(),
        plan.chunks,
        (plan.chunks * CHUNK_BYTES) >> 20,
        if plan.left_out > 0 {
            format!(" ({} more left out by --max-size)", plan.left_out)
        } else {
            String::new()
        }
    );
    let bar = ProgressBar::new(plan.jobs.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} textures, {elapsed} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    let (mut fetched, mut failed) = (0usize, 0usize);
    // A task that panicked fetched nothing it can vouch for.
    let mut count = |done: Result<bool, tokio::task::JoinError>| match done {
        Ok(true) => fetched += 1,
        _ => failed += 1,
    };
    for (distance, id) in plan.jobs {
        // The slot is taken before the task exists: at most IN_FLIGHT tasks.
        let permit = Arc::clone(&slots).acquire_owned().await?;
        let (service, bar) = (service.clone(), bar.clone());
        tasks.spawn(async move {
            let mut complete = true;
            for range in ranges::ranges(format, distance) {
                complete &= service.prefetch(&id, range).await;
            }
            bar.inc(1);
            drop(permit);
            complete
        });
        while let Some(done) = tasks.try_join_next() {
            count(done);
        }
    }
    while let Some(done) = tasks.join_next().await {
        count(done);
    }
    bar.finish();
    service.flush().await;
    let m = service.metrics().snapshot();
    println!(
        "done: {} chunks downloaded ({} MiB), {} textures fetched, {} already cached",
        m.chunk_requests,
        m.chunk_bytes >> 20,
        fetched,
        plan.cached
    );
    if failed > 0 {
        // What was fetched is on disk: a new run fetches only the rest.
        return Err(format!("{failed} textures could not be fetched: run again to retry").into());
    }
    Ok(())
}

/// What a run will fetch: the textures with parts still missing, in order,
/// until the estimate reaches the size limit.
struct Plan {
    jobs: Vec<(f64, TextureId)>,
    /// Chunks the jobs need at most.
    chunks: u64,
    /// Textures whose parts are all in the cache already.
    cached: usize,
    /// Textures past the size limit.
    left_out: usize,
}

/// Finds what each texture still misses (its disk cache file is read, a
/// few at once, in order), and keeps the textures that miss something
/// until their chunks reach `limit` bytes: a run again with the same limit
/// goes on where the last one stopped.
async fn plan(service: &TextureService, jobs: Vec<(f64, TextureId)>, limit: u64) -> Plan {
    let format = service.format();
    let total = jobs.len();
    let mut missing = stream::iter(jobs)
        .map(|(distance, id)| async move {
            let mut units = BTreeSet::new();
            for range in ranges::ranges(format, distance) {
                units.extend(service.missing_units(&id, range).await);
            }
            let chunks: u64 = units.iter().map(|u| u.chunks(&id).len() as u64).sum();
            (distance, id, chunks)
        })
        .buffered(PLANNED_AT_ONCE);
    let mut plan = Plan {
        jobs: Vec::new(),
        chunks: 0,
        cached: 0,
        left_out: 0,
    };
    while let Some((distance, id, chunks)) = missing.next().await {
        if chunks == 0 {
            plan.cached += 1;
            continue;
        }
        if (plan.chunks + chunks) * CHUNK_BYTES > limit {
            break;
        }
        plan.chunks += chunks;
        plan.jobs.push((distance, id));
    }
    plan.left_out = total - plan.cached - plan.jobs.len();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points() {
        assert_eq!(parse_point("47.5, -5.6"), Ok((47.5, -5.6)));
        assert!(parse_point("47.5").is_err() && parse_point("95,0").is_err());
    }
}
