//! BCn block compression with Intel's ISPC texture compressor (intel_tex_2):
//! the fastest of the candidates measured here at a quality X-Plane users
//! cannot tell from the source (see BENCHMARKS.md).

use super::layout::DdsFormat;
use crate::image::RGBA;

/// Bytes of the blocks for a `width` x `height` image (levels under 4 px take one block).
pub fn encoded_len(format: DdsFormat, width: usize, height: usize) -> usize {
    width.div_ceil(4) * height.div_ceil(4) * format.block_bytes() as usize
}

/// Compresses an RGBA image into `out`, blocks row-major.
pub fn encode(format: DdsFormat, rgba: &[u8], width: usize, height: usize, out: &mut [u8]) {
    debug_assert_eq!(rgba.len(), width * height * RGBA);
    debug_assert_eq!(out.len(), encoded_len(format, width, height));
    if !width.is_multiple_of(4) || !height.is_multiple_of(4) {
        // Only the 2x2 and 1x1 levels: pad to one block by repeating edges.
        let (w4, h4) = (width.div_ceil(4) * 4, height.div_ceil(4) * 4);
        let mut padded = vec![0u8; w4 * h4 * RGBA];
        for y in 0..h4 {
            for x in 0..w4 {
                let src = ((y.min(height - 1)) * width + x.min(width - 1)) * RGBA;
                padded[(y * w4 + x) * RGBA..][..RGBA].copy_from_slice(&rgba[src..src + RGBA]);
            }
        }
        return encode(format, &padded, w4, h4, out);
    }
    let surface = intel_tex_2::RgbaSurface {
        data: rgba,
        width: width as u32,
        height: height as u32,
        stride: (width * RGBA) as u32,
    };
    match format {
        DdsFormat::Bc1 => intel_tex_2::bc1::compress_blocks_into(&surface, out),
        DdsFormat::Bc3 => intel_tex_2::bc3::compress_blocks_into(&surface, out),
    }
}
