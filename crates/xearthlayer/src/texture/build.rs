//! The CPU side of a texture: chunk bytes in, DDS mip levels out.
//!
//! Work is cut into *strips*: one row of chunks (a 256 px tall band of the top
//! level being built). A strip is decoded, then encoded and halved again and
//! again while its pixels are still hot in cache, down to the level where it
//! is 4 px tall. Each strip's bytes land in a contiguous range of each level,
//! because a level's blocks are stored row-major. The last few levels (below
//! a 4 px band) are made from the assembled 4 px bands in [`build_tail`].
//!
//! A build starts at any top level `t` in 0..=4: level `t` is exactly the
//! (16 >> t)² chunks at zoom ZL - t, and everything below it is derived.

use bytes::Bytes;

use crate::coord::{CHUNKS_PER_SIDE, CHUNK_PIXELS};
use crate::dds::encode::{encode, encoded_len};
use crate::dds::layout::{self, DdsFormat, MIP_LEVELS};
use crate::image::resample::{fill, halve, upscale_region};
use crate::image::{decode_chunk, CHUNK_RGBA_LEN, NEUTRAL_FILL, RGBA};

/// Levels a strip produces itself: heights 256, 128, ... 4 px.
pub const STRIP_LEVELS: u8 = 7;

/// What is at hand for one chunk of a strip.
#[derive(Debug, Clone)]
pub enum ChunkInput {
    /// The chunk's own image.
    Image(Bytes),
    /// A lower-zoom chunk `depth` levels up that contains this one: its
    /// region is cropped and scaled up.
    Ancestor {
        image: Bytes,
        depth: u8,
        x: u32,
        y: u32,
    },
    /// Nothing: neutral fill.
    Missing,
}

/// The encoded bytes of one strip, per level, plus its smallest band.
#[derive(Debug)]
pub struct StripOutput {
    /// `levels[j]` holds the strip's blocks of level `top + j`.
    pub levels: Vec<Vec<u8>>,
    /// RGBA of the 4 px band at level `top + 6`, width (16 >> top) * 4.
    pub band: Vec<u8>,
    /// Chunks that were not built from their own imagery.
    pub filled: u32,
}

/// Chunks along one side of top level `top`.
pub fn chunks_per_side(top: u8) -> usize {
    (CHUNKS_PER_SIDE >> top) as usize
}

/// Byte offset, inside level `level`, of strip `strip` when building from `top`.
pub fn strip_offset(format: DdsFormat, top: u8, level: u8, strip: usize) -> u64 {
    let band_px = u64::from(CHUNK_PIXELS >> (level - top));
    strip as u64 * (band_px / 4) * layout::block_row_len(format, level)
}

/// Working memory of [`build_strip`]: about 21 MiB for a level-0 strip,
/// reused from one strip to the next so the pipeline does not map, fault in
/// and unmap fresh buffers for every strip.
#[derive(Debug, Default)]
pub struct Scratch {
    image: Vec<u8>,
    half: Vec<u8>,
    chunk: Vec<u8>,
}

/// Decodes one strip of chunks (left to right) and encodes levels
/// `top..top + 7` of it.
pub fn build_strip(
    format: DdsFormat,
    top: u8,
    inputs: &[ChunkInput],
    scratch: &mut Scratch,
) -> StripOutput {
    let side = CHUNK_PIXELS as usize;
    let mut width = inputs.len() * side;
    let mut height = side;
    let Scratch { image, half, chunk } = scratch;
    image.resize(width * height * RGBA, 0);
    chunk.resize(CHUNK_RGBA_LEN, 0);
    let mut filled = 0;
    for (i, input) in inputs.iter().enumerate() {
        if !chunk_pixels(input, chunk) {
            filled += 1;
        }
        let row_len = side * RGBA;
        for y in 0..side {
            let dst = (y * width + i * side) * RGBA;
            image[dst..dst + row_len].copy_from_slice(&chunk[y * row_len..(y + 1) * row_len]);
        }
    }

    let mut levels = Vec::with_capacity(STRIP_LEVELS as usize);
    for j in 0..STRIP_LEVELS {
        let pixels = &image[..width * height * RGBA];
        let mut blocks = vec![0u8; encoded_len(format, width, height)];
        encode(format, pixels, width, height, &mut blocks);
        levels.push(blocks);
        if j + 1 < STRIP_LEVELS {
            half.resize((width / 2) * (height / 2) * RGBA, 0);
            halve(pixels, width, height, half);
            std::mem::swap(image, half);
            width /= 2;
            height /= 2;
        }
    }
    debug_assert_eq!(levels.len() + top as usize, (top + STRIP_LEVELS) as usize);
    StripOutput {
        levels,
        band: image[..width * height * RGBA].to_vec(),
        filled,
    }
}

/// Fills `out` with the chunk's pixels; false when it had to be made up.
fn chunk_pixels(input: &ChunkInput, out: &mut [u8]) -> bool {
    match input {
        ChunkInput::Image(data) => match decode_chunk(data, out) {
            Ok(()) => return true,
            Err(e) => tracing::debug!(error = %e, "undecodable chunk, filling"),
        },
        ChunkInput::Ancestor { image, depth, x, y } => {
            let mut parent = vec![0u8; CHUNK_RGBA_LEN];
            if decode_chunk(image, &mut parent).is_ok() {
                let side = CHUNK_PIXELS as usize;
                let scale = 1usize << depth;
                let region = side / scale;
                let (x0, y0) = (*x as usize * region, *y as usize * region);
                upscale_region(&parent, side, x0, y0, scale, out, side);
                return false;
            }
        }
        ChunkInput::Missing => {}
    }
    fill(out, NEUTRAL_FILL);
    false
}

/// Levels `top + 7 ..= 12` from the strips' 4 px bands stacked top to bottom.
pub fn build_tail(format: DdsFormat, top: u8, bands: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut side = chunks_per_side(top) * 4;
    let mut image: Vec<u8> = bands.concat();
    debug_assert_eq!(image.len(), side * side * RGBA);
    let mut levels = Vec::new();
    for _ in top + STRIP_LEVELS..MIP_LEVELS {
        let mut half = vec![0u8; (side / 2) * (side / 2) * RGBA];
        halve(&image, side, side, &mut half);
        image = half;
        side /= 2;
        let mut blocks = vec![0u8; encoded_len(format, side, side)];
        encode(format, &image, side, side, &mut blocks);
        levels.push(blocks);
    }
    levels
}

/// Assembles a whole DDS file from a build that started at level 0.
pub fn assemble_file(format: DdsFormat, strips: &[StripOutput], tail: &[Vec<u8>]) -> Vec<u8> {
    let mut file = vec![0u8; layout::file_size(format) as usize];
    file[..layout::HEADER_LEN as usize].copy_from_slice(&layout::header(format));
    for (s, strip) in strips.iter().enumerate() {
        for (j, blocks) in strip.levels.iter().enumerate() {
            let level = j as u8;
            let at =
                (layout::level_offset(format, level) + strip_offset(format, 0, level, s)) as usize;
            file[at..at + blocks.len()].copy_from_slice(blocks);
        }
    }
    for (j, blocks) in tail.iter().enumerate() {
        let at = layout::level_offset(format, STRIP_LEVELS + j as u8) as usize;
        file[at..at + blocks.len()].copy_from_slice(blocks);
    }
    file
}

/// A complete, valid texture of neutral colour: what a reader gets when
/// nothing else can be had.
pub fn placeholder(format: DdsFormat) -> Vec<u8> {
    let mut block_px = vec![0u8; 4 * 4 * RGBA];
    fill(&mut block_px, NEUTRAL_FILL);
    let mut block = vec![0u8; format.block_bytes() as usize];
    encode(format, &block_px, 4, 4, &mut block);
    let mut file = Vec::with_capacity(layout::file_size(format) as usize);
    file.extend_from_slice(&layout::header(format));
    while file.len() < file.capacity() {
        file.extend_from_slice(&block);
    }
    file
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_offsets_tile_each_level() {
        let f = DdsFormat::Bc1;
        // 16 strips of level 0 cover the level exactly.
        assert_eq!(strip_offset(f, 0, 0, 16), layout::level_len(f, 0));
        assert_eq!(strip_offset(f, 0, 6, 16), layout::level_len(f, 6));
        // Building from level 4: one strip covers levels 4..=10.
        assert_eq!(strip_offset(f, 4, 10, 1), layout::level_len(f, 10));
    }

    #[test]
    fn placeholder_is_a_full_valid_file() {
        for f in [DdsFormat::Bc1, DdsFormat::Bc3] {
            let p = placeholder(f);
            assert_eq!(p.len() as u64, layout::file_size(f));
            assert_eq!(&p[..128], &layout::header(f));
        }
    }

    #[test]
    fn missing_chunks_are_filled_and_counted() {
        let inputs = vec![
            ChunkInput::Missing,
            ChunkInput::Image(Bytes::from_static(b"junk")),
        ];
        let out = build_strip(DdsFormat::Bc1, 3, &inputs, &mut Scratch::default());
        assert_eq!(out.filled, 2);
        assert_eq!(out.levels.len(), STRIP_LEVELS as usize);
        assert_eq!(
            out.levels[0].len() as u64,
            64 * layout::block_row_len(DdsFormat::Bc1, 3)
        );
        assert_eq!(out.band.len(), 8 * 4 * RGBA);
    }
}
