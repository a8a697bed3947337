//! Stand-in bytes for a mip level from a lower one, without decoding.
//!
//! When a read's time bound runs out before its level is built, the best
//! answer is the texture's own imagery at lower resolution (blurry ground of
//! the right colours) rather than a grey hole. A BCn block stores two
//! endpoints and a 2-bit (colour) or 3-bit (alpha) index per pixel, so a
//! nearest-neighbour upscale by 2^d is exact in the compressed domain: each
//! destination block takes its one source block's endpoints and repeats the
//! indices of the source pixels it covers. It costs a few bit operations per
//! block, no CPU pool and no encoder.

use std::ops::Range;

use super::layout::{self, DdsFormat};

/// Block rows `rows` of level `level`, upscaled from `source`, the whole of
/// the lower level `source_level`.
pub fn upscale_rows(
    format: DdsFormat,
    source_level: u8,
    source: &[u8],
    level: u8,
    rows: Range<u64>,
) -> Vec<u8> {
    debug_assert!(source_level > level);
    debug_assert_eq!(source.len() as u64, layout::level_len(format, source_level));
    let shift = u32::from(source_level - level);
    let block = format.block_bytes() as usize;
    let side = layout::level_blocks_per_side(level);
    let source_side = layout::level_blocks_per_side(source_level) as usize;
    let source_pixels = layout::level_pixels(source_level).max(1);
    let mut out = Vec::with_capacity(((rows.end - rows.start) * side) as usize * block);
    for by in rows {
        for bx in 0..side {
            // Every pixel of this block maps into one source block.
            let sx = ((bx as u32 * 4) >> shift).min(source_pixels - 1);
            let sy = ((by as u32 * 4) >> shift).min(source_pixels - 1);
            let at = ((sy / 4) as usize * source_side + (sx / 4) as usize) * block;
            let src = &source[at..at + block];
            let pixel = |px: u32, py: u32| -> (u32, u32) {
                let x = (((bx as u32 * 4 + px) >> shift).min(source_pixels - 1)) % 4;
                let y = (((by as u32 * 4 + py) >> shift).min(source_pixels - 1)) % 4;
                (x, y)
            };
            match format {
                DdsFormat::Bc1 => out.extend_from_slice(&colour_block(src, pixel)),
                DdsFormat::Bc3 => {
                    out.extend_from_slice(&alpha_block(&src[..8], pixel));
                    out.extend_from_slice(&colour_block(&src[8..], pixel));
                }
            }
        }
    }
    out
}

/// A colour block (BC1 layout) with `src`'s endpoints and, per pixel, the
/// index of the source pixel `pixel(x, y)` names.
fn colour_block(src: &[u8], pixel: impl Fn(u32, u32) -> (u32, u32)) -> [u8; 8] {
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&src[..4]);
    for py in 0..4 {
        let mut row = 0u8;
        for px in 0..4 {
            let (x, y) = pixel(px, py);
            let index = (src[4 + y as usize] >> (2 * x)) & 0b11;
            row |= index << (2 * px);
        }
        out[4 + py as usize] = row;
    }
    out
}

/// An alpha block (BC3 layout): endpoints, then 16 3-bit indices.
fn alpha_block(src: &[u8], pixel: impl Fn(u32, u32) -> (u32, u32)) -> [u8; 8] {
    let indices = src[2..8]
        .iter()
        .enumerate()
        .fold(0u64, |acc, (i, &b)| acc | u64::from(b) << (8 * i));
    let mut packed = 0u64;
    for py in 0..4 {
        for px in 0..4 {
            let (x, y) = pixel(px, py);
            let index = (indices >> (3 * (y * 4 + x))) & 0b111;
            packed |= index << (3 * (py * 4 + px));
        }
    }
    let mut out = [0u8; 8];
    out[..2].copy_from_slice(&src[..2]);
    out[2..].copy_from_slice(&packed.to_le_bytes()[..6]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dds::encode::encode;

    /// Decodes a BC1 level with bcdec (an independent decoder) to RGBA.
    fn decode_bc1(level: u8, bytes: &[u8]) -> Vec<u8> {
        let px = layout::level_pixels(level) as usize;
        let side = layout::level_blocks_per_side(level) as usize;
        let mut rgba = vec![0u8; side * 4 * side * 4 * 4];
        for by in 0..side {
            for bx in 0..side {
                let at = (by * side + bx) * 8;
                let mut block = [0u8; 64];
                bcdec_rs::bc1(&bytes[at..at + 8], &mut block, 16);
                for row in 0..4 {
                    let dst = ((by * 4 + row) * side * 4 + bx * 4) * 4;
                    rgba[dst..dst + 16].copy_from_slice(&block[row * 16..row * 16 + 16]);
                }
            }
        }
        rgba.truncate(px.max(4) * px.max(4) * 4);
        rgba
    }

    #[test]
    fn upscaled_blocks_are_the_nearest_source_pixels() {
        // A 64 px level (level 6) of varied colours, encoded, then upscaled
        // to 256 px (level 4): every pixel must be its source pixel's colour.
        let format = DdsFormat::Bc1;
        let (source_level, level) = (6u8, 4u8);
        let px = layout::level_pixels(source_level) as usize;
        let rgba: Vec<u8> = (0..px * px)
            .flat_map(|i| {
                let (x, y) = (i % px, i / px);
                [(x * 4) as u8, (y * 4) as u8, ((x ^ y) * 3) as u8, 255]
            })
            .collect();
        let mut source = vec![0u8; layout::level_len(format, source_level) as usize];
        encode(format, &rgba, px, px, &mut source);
        let rows = layout::level_blocks_per_side(level);
        let up = upscale_rows(format, source_level, &source, level, 0..rows);
        assert_eq!(up.len() as u64, layout::level_len(format, level));
        let src_px = decode_bc1(source_level, &source);
        let up_px = decode_bc1(level, &up);
        let side = layout::level_pixels(level) as usize;
        for y in 0..side {
            for x in 0..side {
                let s = ((y / 4) * px + x / 4) * 4;
                let d = (y * side + x) * 4;
                assert_eq!(&up_px[d..d + 4], &src_px[s..s + 4], "pixel {x},{y}");
            }
        }
    }

    #[test]
    fn row_ranges_and_bc3_have_the_right_sizes() {
        for format in [DdsFormat::Bc1, DdsFormat::Bc3] {
            let source = vec![0x5Au8; layout::level_len(format, 12) as usize];
            let rows = upscale_rows(format, 12, &source, 0, 10..12);
            assert_eq!(rows.len() as u64, 2 * layout::block_row_len(format, 0));
            // A uniform source stays uniform.
            let block = format.block_bytes() as usize;
            assert!(rows.chunks(block).all(|b| b == &rows[..block]));
        }
    }
}
