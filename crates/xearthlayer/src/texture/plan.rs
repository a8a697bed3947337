//! Which work makes which bytes: the units a texture is built from.
//!
//! X-Plane reads most textures at low resolution, so a texture is never built
//! whole unless it is read whole. Mip level k is exactly the (16 >> k)²
//! chunks at zoom ZL - k, so:
//!
//! - [`Unit::Low`] makes levels 4..=12 from the one chunk at zoom ZL - 4;
//! - [`Unit::Strip`] makes one 256 px band (a row of chunks) of level 0..=3
//!   from that level's own chunks, and while at it, the matching rows of the
//!   levels below it down to level 3 (*derived* rows, used where nothing was
//!   built yet).
//!
//! A read of a byte range needs the units whose bytes it touches and that
//! are not built yet; a 64 KiB header read needs only the top strip of
//! level 0 (16 chunks), a read of mip 4 and below only the one chunk.

use std::ops::Range;

use crate::coord::{ChunkCoord, TextureId, CHUNKS_PER_SIDE};
use crate::dds::layout::{self, DdsFormat};

/// Lowest level made by strips; the levels under it come from [`Unit::Low`].
pub const LOW_LEVEL: u8 = 4;
/// Block rows in one 256 px strip.
const STRIP_BLOCK_ROWS: u64 = 64;

/// A piece of work that makes a known range of a texture's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unit {
    /// Strip `strip` (a row of chunks) of level `level` in 0..=3.
    Strip { level: u8, strip: u8 },
    /// Levels 4..=12, from the one chunk at zoom ZL - 4.
    Low,
}

impl Unit {
    /// The level this unit builds from (its chunks are at zoom ZL - top).
    pub fn top(self) -> u8 {
        match self {
            Unit::Strip { level, .. } => level,
            Unit::Low => LOW_LEVEL,
        }
    }

    /// The bytes the unit makes from its own chunks.
    pub fn range(self, format: DdsFormat) -> Range<u64> {
        match self {
            Unit::Strip { level, strip } => strip_rows(
                format,
                level,
                u64::from(strip) * STRIP_BLOCK_ROWS,
                STRIP_BLOCK_ROWS,
            ),
            Unit::Low => layout::level_offset(format, LOW_LEVEL)..layout::file_size(format),
        }
    }

    /// Its chunks, left to right (one row of chunks).
    pub fn chunks(self, id: &TextureId) -> Vec<ChunkCoord> {
        let top = self.top();
        let row = match self {
            Unit::Strip { strip, .. } => u32::from(strip),
            Unit::Low => 0,
        };
        let side = (CHUNKS_PER_SIDE >> top) as usize;
        id.chunks_at_level(top)
            .skip(row as usize * side)
            .take(side)
            .collect()
    }
}

/// Bytes of `count` block rows of `level` starting at block row `first`.
pub fn strip_rows(format: DdsFormat, level: u8, first: u64, count: u64) -> Range<u64> {
    let row = layout::block_row_len(format, level);
    let start = layout::level_offset(format, level) + first * row;
    start..start + count * row
}

/// Where a strip's derived rows of `level` (a lower level, still above
/// [`LOW_LEVEL`]) go: the strip covers 64 >> (level - top) block rows there.
pub fn derived_range(format: DdsFormat, top: u8, strip: u8, level: u8) -> Range<u64> {
    let count = STRIP_BLOCK_ROWS >> (level - top);
    strip_rows(format, level, u64::from(strip) * count, count)
}

/// Every unit whose own bytes intersect `range`, top levels first.
pub fn units_touching(format: DdsFormat, range: Range<u64>) -> Vec<Unit> {
    let mut units = Vec::new();
    for level in layout::levels_touched(format, range.clone()) {
        if level >= LOW_LEVEL {
            units.push(Unit::Low);
            break;
        }
        let level_range = layout::level_range(format, level);
        let strip_len = STRIP_BLOCK_ROWS * layout::block_row_len(format, level);
        let from = range.start.max(level_range.start) - level_range.start;
        let to = range.end.min(level_range.end) - level_range.start;
        for strip in from / strip_len..to.div_ceil(strip_len) {
            units.push(Unit::Strip {
                level,
                strip: strip as u8,
            });
        }
    }
    units
}

/// All units of a whole texture, top first.
pub fn all_units(format: DdsFormat) -> Vec<Unit> {
    units_touching(format, 0..layout::file_size(format))
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: DdsFormat = DdsFormat::Bc1;

    #[test]
    fn units_tile_the_file_after_the_header() {
        let units = all_units(F);
        // 16 + 8 + 4 + 2 strips and the low unit.
        assert_eq!(units.len(), 31);
        let mut ranges: Vec<_> = units.iter().map(|u| u.range(F)).collect();
        ranges.sort_by_key(|r| r.start);
        assert_eq!(ranges[0].start, layout::HEADER_LEN);
        for pair in ranges.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
        assert_eq!(ranges.last().unwrap().end, layout::file_size(F));
    }

    #[test]
    fn a_header_read_needs_the_top_strip_only() {
        assert_eq!(
            units_touching(F, 0..65536),
            vec![Unit::Strip { level: 0, strip: 0 }]
        );
        assert_eq!(units_touching(F, 0..128), vec![]);
    }

    #[test]
    fn a_low_read_needs_one_chunk() {
        let mip4 = layout::level_offset(F, 4);
        assert_eq!(
            units_touching(F, mip4..layout::file_size(F)),
            vec![Unit::Low]
        );
        let id = TextureId::parse("25264_10368_BI16.dds").unwrap();
        assert_eq!(
            Unit::Low.chunks(&id),
            vec![ChunkCoord {
                zoom: 12,
                x: 648,
                y: 1579
            }]
        );
        let strip = Unit::Strip { level: 2, strip: 3 };
        let chunks = strip.chunks(&id);
        assert_eq!(chunks.len(), 4);
        assert!(chunks.iter().all(|c| c.zoom == 14 && c.y == 25264 / 4 + 3));
    }

    #[test]
    fn derived_rows_nest_inside_own_strips() {
        // Level 0 strip 5 derives level 1 rows that sit in level 1 strip 2.
        let d = derived_range(F, 0, 5, 1);
        let own = Unit::Strip { level: 1, strip: 2 }.range(F);
        assert!(own.start <= d.start && d.end <= own.end);
        assert_eq!(d.end - d.start, 32 * layout::block_row_len(F, 1));
    }
}
