//! What a read needs built, and waiting for it while it moves.
//!
//! A read builds only the units its range touches, top levels first: a
//! level-0 strip also makes the rows below it, so lower levels are planned
//! again after each round. A live read that needs full-resolution strips
//! also claims the texture's low levels, first: they come from one
//! low-zoom chunk, so a read that must give up gets the texture's own
//! imagery scaled up (blurry), not neutral fill (grey). Each unit is
//! claimed from the entry's shared work, so readers of the same unit share
//! one build; a reader that gives up (see [`patience`](super::patience))
//! drops its claims (a build nobody else wants is cancelled) and is
//! answered with stand-ins. A read past the first strip of a level starts
//! the level's later strips too (read-ahead).

use std::ops::Range;
use std::sync::Arc;

use futures_util::future::join_all;

use super::entry::{TextureEntry, UnitOutcome};
use super::patience::{GiveUp, ReadNeed};
use super::plan::{self, Unit};
use super::service::Inner;
use super::shared_work::{Abandoned, Claim, Urgency};

/// Build rounds one read may take: normally at most one per level from 0
/// to 3 and one for the low levels.
const MAX_ROUNDS: usize = 8;

impl Inner {
    /// Builds whatever of `range` is not built yet, for a live read
    /// (`need`) or as background work (`None`: no reader waits). Returns
    /// whether all of `range` is built now; a live read that gave up
    /// returns `false`.
    pub(super) async fn ensure(
        self: &Arc<Self>,
        entry: &Arc<TextureEntry>,
        range: Range<u64>,
        need: Option<ReadNeed>,
    ) -> bool {
        if entry.state.is_built(range.clone()) {
            self.metrics.memory_hits.incr();
            return true;
        }
        match need {
            Some(need) => {
                if tokio::time::timeout_at(need.cap, self.load_from_disk(entry))
                    .await
                    .is_err()
                {
                    self.metrics.reads_past_cap.incr();
                    return false;
                }
            }
            None => self.load_from_disk(entry).await,
        }
        let urgency: Urgency = need.map(|n| n.since);
        for n in 0..MAX_ROUNDS {
            let mut round = self.next_round(entry, range.clone());
            if round.is_empty() {
                break;
            }
            if let Some(need) = need {
                if n == 0 {
                    self.metrics.reads_waited.incr();
                }
                self.read_ahead(entry, &round, need);
                if self.wants_low_first(entry, &round) {
                    round.insert(0, Unit::Low);
                }
            }
            let claims: Vec<(Unit, Claim<UnitOutcome>)> = round
                .into_iter()
                .map(|unit| (unit, self.claim_unit(entry, unit, urgency)))
                .collect();
            let waits = join_all(claims.iter().map(|(_, claim)| claim.wait()));
            let outcomes = match need {
                Some(need) => tokio::select! {
                    outcomes = waits => outcomes,
                    why = self.give_up(entry, need) => {
                        match why {
                            GiveUp::Stalled => self.metrics.reads_stalled.incr(),
                            GiveUp::PastCap => self.metrics.reads_past_cap.incr(),
                        }
                        return false;
                    }
                },
                None => waits.await,
            };
            for ((unit, _), outcome) in claims.iter().zip(outcomes) {
                match outcome {
                    Ok(UnitOutcome::Built | UnitOutcome::Degraded) => {}
                    // Background work that would have needed stand-ins.
                    Ok(UnitOutcome::Discarded) => return false,
                    Err(Abandoned) => {
                        tracing::error!(texture = %entry.id(), ?unit, "a texture build died; serving stand-ins");
                        self.metrics.builds_failed.incr();
                        entry.mark_failed(*unit);
                    }
                }
            }
        }
        entry.state.is_built(range)
    }

    /// Whether a live round of full-resolution strips should build the
    /// low levels first: they are not built, and the round does not hold
    /// them already.
    fn wants_low_first(&self, entry: &TextureEntry, round: &[Unit]) -> bool {
        round.iter().all(|u| *u != Unit::Low)
            && !entry.has_failed(Unit::Low)
            && !entry.state.is_built(Unit::Low.range(self.config.format))
    }

    /// The units of `range` to build next: those of the top level still
    /// missing. Levels 4..=12 come free with the last level-0 strip, so the
    /// low unit is built on its own only when no level-0 strip is needed.
    fn next_round(&self, entry: &TextureEntry, range: Range<u64>) -> Vec<Unit> {
        let format = self.config.format;
        let needed: Vec<Unit> = plan::units_touching(format, range.clone())
            .into_iter()
            .filter(|u| {
                let r = u.range(format);
                !entry.has_failed(*u)
                    && !entry
                        .state
                        .is_built(r.start.max(range.start)..r.end.min(range.end))
            })
            .collect();
        let Some(top) = needed.iter().map(|u| u.top()).min() else {
            return Vec::new();
        };
        needed
            .into_iter()
            .filter(|u| u.top() == top || (*u == Unit::Low && top > 0))
            .collect()
    }

    /// A claim on the one build of `unit` for this entry.
    fn claim_unit(
        self: &Arc<Self>,
        entry: &Arc<TextureEntry>,
        unit: Unit,
        urgency: Urgency,
    ) -> Claim<UnitOutcome> {
        let (inner, owner) = (Arc::clone(self), Arc::clone(entry));
        entry.units.claim(unit, urgency, move |urgency| {
            inner.build_unit(owner, unit, urgency)
        })
    }

    /// A read past the first strip of a level is a read of the whole level
    /// (X-Plane reads a close texture front to back in pieces): start the
    /// level's later strips now instead of one piece at a time. The reader
    /// will wait for them in a moment, so they are live work of the same
    /// visit, wanted until its cap (as background work, a strip that
    /// needed stand-ins would be discarded and built again when the reader
    /// got to it). Header reads (strip 0 only) start nothing.
    fn read_ahead(self: &Arc<Self>, entry: &Arc<TextureEntry>, round: &[Unit], need: ReadNeed) {
        let format = self.config.format;
        let Some((level, last)) = round
            .iter()
            .filter_map(|u| match *u {
                Unit::Strip { level, strip } => Some((level, strip)),
                Unit::Low => None,
            })
            .max_by_key(|&(_, strip)| strip)
        else {
            return;
        };
        if last == 0 {
            return;
        }
        let strips = 16u8 >> level;
        for strip in last + 1..strips {
            let unit = Unit::Strip { level, strip };
            if entry.state.is_built(unit.range(format)) || entry.units.is_running(&unit) {
                continue;
            }
            let claim = self.claim_unit(entry, unit, Some(need.since));
            // The holder keeps the build wanted until it ends, or the
            // visit's cap passes.
            tokio::spawn(async move {
                let _ = tokio::time::timeout_at(need.cap, claim.wait()).await;
            });
        }
    }

    /// Fills a new entry from the disk cache, once. The load (up to a
    /// whole texture file) runs in a task of its own that stores what it
    /// read in the entry even when its reader stopped waiting (its bound
    /// ran out): the next read finds the bytes, or waits for that same
    /// load, instead of reading the file again.
    pub(super) async fn load_from_disk(self: &Arc<Self>, entry: &Arc<TextureEntry>) {
        if entry.disk.is_none() || entry.disk_loaded.initialized() {
            return;
        }
        let (inner, entry) = (Arc::clone(self), Arc::clone(entry));
        let load = tokio::spawn(async move {
            let Some(disk) = &entry.disk else { return };
            entry
                .disk_loaded
                .get_or_init(|| async {
                    if let Some(segments) = disk.load(entry.key().texture).await {
                        inner.metrics.disk_hits.incr();
                        for (offset, bytes) in segments {
                            entry.state.insert(offset, bytes);
                        }
                        inner.registry.reweigh(&entry);
                    } else {
                        inner.metrics.cache_misses.incr();
                    }
                })
                .await;
        });
        let _ = load.await;
    }
}
