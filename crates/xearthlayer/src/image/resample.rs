//! Resampling: the 2x2 box filter behind every mip level, and the crop and
//! upscale that fills a missing chunk from a lower-zoom one.

use super::RGBA;

/// Halves an RGBA image (`width` x `height`, both even) with a 2x2 box
/// filter, rounding to nearest. `out` holds (width/2) x (height/2) pixels.
///
/// Two passes per output row, each a plain loop the compiler vectorises:
/// sum the two source rows into 16-bit lanes, then add neighbouring pixels.
pub fn halve(src: &[u8], width: usize, height: usize, out: &mut [u8]) {
    let (out_w, out_h) = (width / 2, height / 2);
    debug_assert_eq!(src.len(), width * height * RGBA);
    debug_assert_eq!(out.len(), out_w * out_h * RGBA);
    let row = width * RGBA;
    let mut sums = vec![0u16; row];
    for (y, out_row) in out.chunks_exact_mut(out_w * RGBA).enumerate().take(out_h) {
        let top = &src[2 * y * row..(2 * y + 1) * row];
        let bottom = &src[(2 * y + 1) * row..(2 * y + 2) * row];
        for ((s, &t), &b) in sums.iter_mut().zip(top).zip(bottom) {
            *s = u16::from(t) + u16::from(b);
        }
        for (o, pair) in out_row
            .chunks_exact_mut(RGBA)
            .zip(sums.chunks_exact(2 * RGBA))
        {
            for c in 0..RGBA {
                o[c] = ((pair[c] + pair[c + RGBA] + 2) >> 2) as u8;
            }
        }
    }
}

/// Fills a `side` x `side` RGBA tile by scaling up the square region of
/// `src` (a `src_side` x `src_side` image) at (`x0`, `y0`) of size
/// `src_side / scale`, nearest neighbour. Used for missing chunks, where
/// any plausible imagery beats a hole.
pub fn upscale_region(
    src: &[u8],
    src_side: usize,
    x0: usize,
    y0: usize,
    scale: usize,
    out: &mut [u8],
    side: usize,
) {
    debug_assert_eq!(out.len(), side * side * RGBA);
    for (y, out_row) in out.chunks_exact_mut(side * RGBA).enumerate() {
        let sy = y0 + y / scale;
        let src_row = &src[sy * src_side * RGBA..(sy + 1) * src_side * RGBA];
        for (x, px) in out_row.chunks_exact_mut(RGBA).enumerate() {
            let sx = x0 + x / scale;
            px.copy_from_slice(&src_row[sx * RGBA..(sx + 1) * RGBA]);
        }
    }
}

/// Fills an RGBA buffer with one colour.
pub fn fill(out: &mut [u8], colour: [u8; 4]) {
    for px in out.chunks_exact_mut(RGBA) {
        px.copy_from_slice(&colour);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halving_averages_each_2x2_block() {
        // 4x2 image: two 2x2 blocks.
        let mut src = vec![0u8; 4 * 2 * RGBA];
        for (i, px) in src.chunks_exact_mut(RGBA).enumerate() {
            px.copy_from_slice(&[i as u8 * 10, 255, 0, 255]);
        }
        let mut out = vec![0u8; 2 * RGBA];
        halve(&src, 4, 2, &mut out);
        // Left block pixels 0,1,4,5 -> (0+10+40+50)/4 = 25; right 2,3,6,7 -> 45.
        assert_eq!(out, vec![25, 255, 0, 255, 45, 255, 0, 255]);
    }

    #[test]
    fn upscale_repeats_pixels() {
        let mut src = vec![0u8; 2 * 2 * RGBA];
        for (i, px) in src.chunks_exact_mut(RGBA).enumerate() {
            px.copy_from_slice(&[i as u8, 0, 0, 255]);
        }
        let mut out = vec![0u8; 4 * 4 * RGBA];
        // The right column of the 2x2 source, 1 px wide, scaled 4x... use the
        // top-right pixel region of size 1 scaled by 4.
        upscale_region(&src, 2, 1, 0, 4, &mut out, 4);
        assert!(out.chunks_exact(RGBA).all(|p| p == [1, 0, 0, 255]));
        upscale_region(&src, 2, 0, 0, 2, &mut out, 4);
        assert_eq!(&out[0..4], &[0, 0, 0, 255]);
        assert_eq!(&out[3 * RGBA..4 * RGBA], &[1, 0, 0, 255]);
        assert_eq!(&out[15 * RGBA..16 * RGBA], &[3, 0, 0, 255]);
    }
}
