//! Building one unit: its chunks downloaded (or stood in for), then the CPU
//! pool decodes, mips and encodes them, and the bytes go into the entry and,
//! when all from real imagery, to the disk cache.
//!
//! Live work downloads until every chunk is settled: the readers decide
//! when to stop waiting, and cancel the build when none waits any more.
//! Background work downloads for a fixed budget. A chunk whose download
//! failed (no imagery there, the provider failing fast) gets its stand-in
//! fetches started (lower-zoom chunks that contain it), and so does, in
//! background work, a chunk still missing halfway through the budget; at
//! the end each chunk takes the best of what arrived. Background work that
//! would need stand-ins keeps nothing: a reader builds it for real later.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt};
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::build::{self, ChunkInput, StripOutput};
use super::class_of;
use super::entry::{TextureEntry, UnitOutcome};
use super::fallback;
use super::plan::{self, Unit, LOW_LEVEL};
use super::service::Inner;
use super::state::LowPart;
use crate::coord::ChunkCoord;
use crate::dds::layout::{self, DdsFormat};
use crate::sched::{Urgency, WorkClass};

/// A chunk's download answered: (chunk index, depth above it, image).
type Arrival = BoxFuture<'static, (usize, u8, Option<Bytes>)>;

/// What is known of one chunk of a unit while its downloads run.
struct ChunkProgress {
    image: Option<Bytes>,
    /// Its own download answered without imagery.
    failed: bool,
    /// The nearest stand-in that arrived: (depth, image).
    stand_in: Option<(u8, Bytes)>,
    stand_ins_started: bool,
    stand_ins_pending: usize,
    /// The nearest depth a stand-in can come from.
    nearest: Option<u8>,
}

impl ChunkProgress {
    fn new(chunk: ChunkCoord, max_zoom: u8) -> Self {
        ChunkProgress {
            image: None,
            failed: false,
            stand_in: None,
            stand_ins_started: false,
            stand_ins_pending: 0,
            nearest: fallback::stand_in_depths(chunk, max_zoom).first().copied(),
        }
    }

    /// Nothing better can come for this chunk: its image, or, its download
    /// having failed, every stand-in answered or the nearest one arrived.
    fn settled(&self) -> bool {
        self.image.is_some()
            || (self.failed
                && (self.stand_ins_pending == 0
                    || self.stand_in.as_ref().map(|(d, _)| *d) == self.nearest))
    }
}

impl Inner {
    /// The one build of `unit` for `entry`.
    pub(super) async fn build_unit(
        self: Arc<Self>,
        entry: Arc<TextureEntry>,
        unit: Unit,
        mut urgency: watch::Receiver<Urgency>,
    ) -> UnitOutcome {
        let _slot = self.builds.acquire_as(&mut urgency).await;
        let _in_flight = match class_of(&urgency) {
            WorkClass::Live => self.metrics.generations_in_flight.enter(),
            WorkClass::Background => self.metrics.background_builds_in_flight.enter(),
        };
        let started = Instant::now();
        let inputs = self.unit_inputs(&entry, unit, started, &mut urgency).await;
        let filled = inputs
            .iter()
            .filter(|i| !matches!(i, ChunkInput::Image(_)))
            .count() as u32;
        if filled > 0 && class_of(&urgency) == WorkClass::Background {
            self.metrics.background_discarded.incr();
            return UnitOutcome::Discarded;
        }
        let format = self.config.format;
        let top = unit.top();
        let scratch = Arc::clone(&self.scratch);
        let out: StripOutput = self
            .cpu
            .run(&mut urgency, move || {
                // One scratch per CPU job at most: the pool bounds them.
                let mut mine = super::entry::lock(&scratch).pop().unwrap_or_default();
                let out = build::build_strip(format, top, &inputs, &mut mine);
                super::entry::lock(&scratch).push(mine);
                out
            })
            .await;
        let degraded = out.filled > 0;
        if degraded {
            if !entry.state.is_degraded() {
                self.metrics.textures_degraded.incr();
            }
            entry.state.mark_degraded();
            self.metrics.chunks_filled.add(u64::from(out.filled));
        }
        let (segments, derived_degraded) = segments_of(format, &entry, unit, out, degraded);
        let added: Vec<(u64, Bytes)> = segments
            .into_iter()
            .flat_map(|(at, bytes)| entry.state.insert(at, bytes))
            .collect();
        self.metrics.units_built.incr();
        self.metrics
            .bytes_produced
            .add(added.iter().map(|(_, b)| b.len() as u64).sum());
        self.registry.reweigh(&entry);
        if !degraded && !derived_degraded && !added.is_empty() {
            self.store(&entry, added);
        }
        if degraded {
            UnitOutcome::Degraded
        } else {
            UnitOutcome::Built
        }
    }

    /// When the unit's downloads end, given its urgency now: never for
    /// live work (its readers give up, and cancel it, if it stalls).
    fn download_deadline(
        &self,
        started: Instant,
        urgency: &watch::Receiver<Urgency>,
    ) -> Option<Instant> {
        match *urgency.borrow() {
            Some(_) => None,
            None => Some(started + self.config.background_budget),
        }
    }

    /// Every chunk of the unit, downloaded or stood in for.
    async fn unit_inputs(
        self: &Arc<Self>,
        entry: &Arc<TextureEntry>,
        unit: Unit,
        started: Instant,
        urgency: &mut watch::Receiver<Urgency>,
    ) -> Vec<ChunkInput> {
        let chunks = unit.chunks(entry.id());
        let max_zoom = entry.provider.max_zoom();
        let mut progress: Vec<ChunkProgress> = chunks
            .iter()
            .map(|&chunk| ChunkProgress::new(chunk, max_zoom))
            .collect();
        let mut pending: FuturesUnordered<Arrival> = FuturesUnordered::new();
        for (i, &chunk) in chunks.iter().enumerate() {
            if let Some(held) = (unit == Unit::Low)
                .then(|| entry.stand_in(&chunk))
                .flatten()
            {
                progress[i].image = Some(held);
                continue;
            }
            let claim = self
                .downloads
                .claim(&entry.provider, chunk, *urgency.borrow());
            pending.push(async move { (i, 0u8, claim.wait().await.ok().flatten()) }.boxed());
        }
        while !progress.iter().all(ChunkProgress::settled) && !pending.is_empty() {
            let deadline = self.download_deadline(started, urgency);
            let halfway = deadline.map(|d| started + (d.saturating_duration_since(started) / 2));
            let waiting = progress
                .iter()
                .any(|p| p.image.is_none() && !p.stand_ins_started);
            tokio::select! {
                arrival = pending.next() => {
                    let Some((i, depth, image)) = arrival else { break };
                    let p = &mut progress[i];
                    match (depth, image) {
                        (0, Some(image)) => {
                            if unit == Unit::Low {
                                entry.keep_stand_in(chunks[i], image.clone());
                            }
                            p.image = Some(image);
                        }
                        (0, None) => {
                            p.failed = true;
                            if !p.stand_ins_started {
                                pending.extend(self.stand_in_claims(entry, chunks[i], i, *urgency.borrow(), p));
                            }
                        }
                        (depth, image) => {
                            p.stand_ins_pending -= 1;
                            if let Some(image) = image {
                                entry.keep_stand_in(chunks[i].ancestor(depth), image.clone());
                                if p.stand_in.as_ref().is_none_or(|(d, _)| depth < *d) {
                                    p.stand_in = Some((depth, image));
                                }
                            }
                        }
                    }
                }
                () = sleep_until(halfway), if waiting && halfway.is_some() => {
                    for (i, p) in progress.iter_mut().enumerate() {
                        if p.image.is_none() && !p.stand_ins_started {
                            pending.extend(self.stand_in_claims(entry, chunks[i], i, *urgency.borrow(), p));
                        }
                    }
                }
                () = sleep_until(deadline), if deadline.is_some() => {
                    // Unless a reader joined meanwhile.
                    if self
                        .download_deadline(started, urgency)
                        .is_some_and(|d| d <= Instant::now())
                    {
                        self.metrics.units_cut_by_deadline.incr();
                        break;
                    }
                }
                () = super::changed(urgency) => {}
            }
        }
        // What is still pending is dropped here: nobody waits for it now.
        drop(pending);
        chunks
            .iter()
            .zip(progress)
            .map(|(&chunk, p)| match p.image {
                Some(image) => ChunkInput::Image(image),
                None => fallback::chunk_stand_in(entry, chunk, p.stand_in, max_zoom),
            })
            .collect()
    }

    /// The downloads of the lower-zoom chunks that could stand in for
    /// chunk `index`, nearest first, except those the texture holds.
    fn stand_in_claims(
        &self,
        entry: &TextureEntry,
        chunk: ChunkCoord,
        index: usize,
        urgency: Urgency,
        progress: &mut ChunkProgress,
    ) -> Vec<Arrival> {
        progress.stand_ins_started = true;
        let claims: Vec<Arrival> = fallback::stand_in_depths(chunk, entry.provider.max_zoom())
            .into_iter()
            .filter(|&depth| entry.stand_in(&chunk.ancestor(depth)).is_none())
            .map(|depth| {
                let claim = self
                    .downloads
                    .claim(&entry.provider, chunk.ancestor(depth), urgency);
                async move { (index, depth, claim.wait().await.ok().flatten()) }.boxed()
            })
            .collect();
        progress.stand_ins_pending += claims.len();
        claims
    }

    /// Writes finished, real-imagery bytes to the disk cache in the
    /// background, within the budget of bytes waiting to be written.
    fn store(&self, entry: &TextureEntry, added: Vec<(u64, Bytes)>) {
        let Some(disk) = &entry.disk else { return };
        let bytes = added.iter().map(|(_, b)| b.len() as u64).sum();
        let Some(reservation) = self.pending_writes.try_reserve(bytes) else {
            self.metrics.disk_writes_dropped.incr();
            tracing::debug!(texture = %entry.id(), "disk writes are backed up; not storing this part");
            return;
        };
        let (disk, key) = (Arc::clone(disk), entry.key().texture);
        self.disk_writes.spawn(async move {
            disk.append(key, added).await;
            drop(reservation);
        });
    }
}

/// The byte segments a built unit adds, and whether derived low levels
/// include degraded strips.
fn segments_of(
    format: DdsFormat,
    entry: &TextureEntry,
    unit: Unit,
    out: StripOutput,
    degraded: bool,
) -> (Vec<(u64, Bytes)>, bool) {
    let mut segments = Vec::new();
    let mut derived_degraded = false;
    match unit {
        Unit::Strip { level, strip } => {
            let mut levels = out.levels.into_iter().map(Bytes::from);
            segments.push((
                unit.range(format).start,
                levels.next().expect("a strip's own level"),
            ));
            for below in level + 1..LOW_LEVEL {
                let at = plan::derived_range(format, level, strip, below).start;
                segments.push((at, levels.next().expect("a strip's derived level")));
            }
            if level == 0 {
                let part = LowPart {
                    rows: levels.take(3).collect(),
                    band: out.band,
                    degraded,
                };
                if let Some(parts) = entry.state.add_low_part(strip as usize, part) {
                    derived_degraded = parts.iter().any(|p| p.degraded);
                    segments.push((Unit::Low.range(format).start, derive_low(format, &parts)));
                }
            }
        }
        Unit::Low => {
            let tail = build::build_tail(format, LOW_LEVEL, &[out.band]);
            // Whole levels at a time (a byte-wise flatten showed in profiles).
            let low = [out.levels, tail].concat().concat();
            segments.push((unit.range(format).start, Bytes::from(low)));
        }
    }
    (segments, derived_degraded)
}

/// Levels 4..=12 from the 16 level-0 strips' parts: their rows of levels 4
/// to 6 in order, then the tail from their bands.
fn derive_low(format: DdsFormat, parts: &[LowPart]) -> Bytes {
    let mut low = Vec::with_capacity(
        (layout::file_size(format) - layout::level_offset(format, LOW_LEVEL)) as usize,
    );
    for level in 0..3 {
        for part in parts {
            low.extend_from_slice(&part.rows[level]);
        }
    }
    let bands: Vec<Vec<u8>> = parts.iter().map(|p| p.band.clone()).collect();
    for level in build::build_tail(format, 0, &bands) {
        low.extend_from_slice(&level);
    }
    Bytes::from(low)
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
