//! What stands in for imagery that could not be had in time.
//!
//! Two places need a stand-in, and both prefer the texture's own imagery at
//! lower resolution to a neutral colour:
//!
//! - a *chunk* a unit could not download: a lower-zoom chunk that contains
//!   it (fetched or already held by the texture), cropped and scaled up by
//!   the CPU pipeline; else neutral fill;
//! - a *read* whose time bound ran out before its bytes were built: the
//!   built bytes where there are any, each missing block row upscaled in the
//!   compressed domain from the nearest lower level that is built
//!   ([`crate::dds::upscale`]); else the neutral placeholder. These bytes
//!   are served but not kept, so the next read gets the real build.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use super::build::ChunkInput;
use super::entry::TextureEntry;
use super::state::TextureState;
use crate::coord::ChunkCoord;
use crate::dds::layout::{self, MIP_LEVELS};
use crate::dds::upscale::upscale_rows;

/// How many zoom levels up a missing chunk looks for stand-in imagery.
const STAND_IN_DEPTHS: u8 = 4;
/// The deepest stand-in: one chunk scaled up 256 times is a blur already.
const DEEPEST_STAND_IN: u8 = 8;

/// How far up (in zoom levels) a stand-in for `chunk` may come from,
/// nearest first, given the provider's highest zoom.
pub fn stand_in_depths(chunk: ChunkCoord, max_zoom: u8) -> Vec<u8> {
    let first = chunk.zoom.saturating_sub(max_zoom).max(1);
    (first..first + STAND_IN_DEPTHS)
        .filter(|&d| d <= chunk.zoom && d <= DEEPEST_STAND_IN)
        .collect()
}

/// The input for a chunk that was not downloaded: the nearer of the stand-in
/// that arrived and one the texture holds, else neutral fill.
pub fn chunk_stand_in(
    entry: &TextureEntry,
    chunk: ChunkCoord,
    arrived: Option<(u8, Bytes)>,
    max_zoom: u8,
) -> ChunkInput {
    let held = stand_in_depths(chunk, max_zoom)
        .into_iter()
        .find_map(|depth| {
            entry
                .stand_in(&chunk.ancestor(depth))
                .map(|image| (depth, image))
        });
    let best = match (arrived, held) {
        (Some(a), Some(h)) => Some(if a.0 <= h.0 { a } else { h }),
        (a, h) => a.or(h),
    };
    match best {
        Some((depth, image)) => {
            let mask = (1u32 << depth) - 1;
            ChunkInput::Ancestor {
                image,
                depth,
                x: chunk.x & mask,
                y: chunk.y & mask,
            }
        }
        None => ChunkInput::Missing,
    }
}

/// Exactly the bytes of `range`: what is built, the rest stood in for from
/// built lower levels, then `placeholder` (a whole neutral file).
pub fn read_with_stand_ins(state: &TextureState, range: Range<u64>, placeholder: &Bytes) -> Bytes {
    let format = state.format();
    let base = state.read(range.clone(), placeholder);
    let size = layout::file_size(format);
    let (start, end) = (range.start.min(size), range.end.min(size));
    let mut out: Option<BytesMut> = None;
    for level in layout::levels_touched(format, start..end) {
        let level_range = layout::level_range(format, level);
        let row_len = layout::block_row_len(format, level);
        let (from, to) = (start.max(level_range.start), end.min(level_range.end));
        let row_bytes = |row: u64| {
            let row_start = level_range.start + row * row_len;
            row_start.max(from)..(row_start + row_len).min(to)
        };
        let rows: Vec<u64> = ((from - level_range.start) / row_len
            ..(to - level_range.start).div_ceil(row_len))
            .filter(|&row| !state.is_built(row_bytes(row)))
            .collect();
        let (Some(&first), Some(&last)) = (rows.first(), rows.last()) else {
            continue;
        };
        let Some(stand_in) = upscaled_rows(state, level, first..last + 1) else {
            continue;
        };
        let out = out.get_or_insert_with(|| BytesMut::from(&base[..]));
        for row in rows {
            let bytes = row_bytes(row);
            let at = (bytes.start - level_range.start - first * row_len) as usize;
            let len = (bytes.end - bytes.start) as usize;
            out[(bytes.start - start) as usize..(bytes.end - start) as usize]
                .copy_from_slice(&stand_in[at..at + len]);
        }
    }
    out.map_or(base, BytesMut::freeze)
}

/// Block rows `rows` of `level`, upscaled from the nearest lower level that
/// is built whole.
fn upscaled_rows(state: &TextureState, level: u8, rows: Range<u64>) -> Option<Vec<u8>> {
    let format = state.format();
    (level + 1..MIP_LEVELS).find_map(|source_level| {
        let source = state.built_bytes(layout::level_range(format, source_level))?;
        Some(upscale_rows(
            format,
            source_level,
            &source,
            level,
            rows.clone(),
        ))
    })
}
