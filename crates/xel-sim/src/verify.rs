//! Checking generated textures against the imagery they were made from:
//! an independent BCn decoder (bcdec_rs, not the encoder's project), the
//! reference image of any mip level, and PSNR.

use xearthlayer::coord::{TextureId, CHUNKS_PER_SIDE, CHUNK_PIXELS};
use xearthlayer::dds::layout::{self, DdsFormat};
use xearthlayer::image::resample::halve;
use xearthlayer::image::{decode_chunk, CHUNK_RGBA_LEN, RGBA};

use crate::imagery::chunk_jpeg;

/// Decodes BCn blocks of a `width` x `height` image into RGBA (images under
/// 4 px are cropped from their one block).
pub fn decode_blocks(format: DdsFormat, blocks: &[u8], width: usize, height: usize) -> Vec<u8> {
    let (bw, bh) = (width.div_ceil(4), height.div_ceil(4));
    let (pw, ph) = (bw * 4, bh * 4);
    let block_len = format.block_bytes() as usize;
    let mut padded = vec![0u8; pw * ph * RGBA];
    let pitch = pw * RGBA;
    for by in 0..bh {
        for bx in 0..bw {
            let block = &blocks[(by * bw + bx) * block_len..][..block_len];
            let out = &mut padded[(by * 4 * pw + bx * 4) * RGBA..];
            match format {
                DdsFormat::Bc1 => bcdec_rs::bc1(block, out, pitch),
                DdsFormat::Bc3 => bcdec_rs::bc3(block, out, pitch),
            }
        }
    }
    if (pw, ph) == (width, height) {
        return padded;
    }
    let mut image = Vec::with_capacity(width * height * RGBA);
    for y in 0..height {
        image.extend_from_slice(&padded[y * pitch..y * pitch + width * RGBA]);
    }
    image
}

/// RGBA of mip `level` of a whole DDS file.
pub fn decode_level(dds: &[u8], format: DdsFormat, level: u8) -> Vec<u8> {
    let range = layout::level_range(format, level);
    let side = layout::level_pixels(level) as usize;
    decode_blocks(
        format,
        &dds[range.start as usize..range.end as usize],
        side,
        side,
    )
}

/// What mip `level` of a texture should look like: the served chunks of
/// level 0, composited and halved `level` times with a 2x2 box filter.
pub fn expected_level(id: &TextureId, level: u8) -> Vec<u8> {
    let chunk_side = CHUNK_PIXELS as usize;
    let mut side = chunk_side * CHUNKS_PER_SIDE as usize;
    let mut image = vec![0u8; side * side * RGBA];
    let mut chunk = vec![0u8; CHUNK_RGBA_LEN];
    for (i, c) in id.chunks().enumerate() {
        decode_chunk(&chunk_jpeg(c.zoom, c.x, c.y), &mut chunk).expect("the test imagery decodes");
        let (cx, cy) = (i % 16, i / 16);
        for y in 0..chunk_side {
            let dst = ((cy * chunk_side + y) * side + cx * chunk_side) * RGBA;
            image[dst..dst + chunk_side * RGBA]
                .copy_from_slice(&chunk[y * chunk_side * RGBA..(y + 1) * chunk_side * RGBA]);
        }
    }
    for _ in 0..level {
        let mut half = vec![0u8; (side / 2) * (side / 2) * RGBA];
        halve(&image, side, side, &mut half);
        image = half;
        side /= 2;
    }
    image
}

/// Peak signal-to-noise ratio over the colour channels, in dB.
pub fn psnr(reference: &[u8], test: &[u8]) -> f64 {
    assert_eq!(reference.len(), test.len(), "images differ in size");
    let (mut sum, mut n) = (0f64, 0u64);
    for (a, b) in reference.chunks_exact(RGBA).zip(test.chunks_exact(RGBA)) {
        for c in 0..3 {
            let d = f64::from(a[c]) - f64::from(b[c]);
            sum += d * d;
            n += 1;
        }
    }
    let mse = sum / n as f64;
    if mse == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (255.0f64 * 255.0 / mse).log10()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psnr_of_identical_and_different_images() {
        let a = vec![100u8; 64];
        assert!(psnr(&a, &a).is_infinite());
        let mut b = a.clone();
        b[0] = 110;
        let db = psnr(&a, &b);
        assert!(db > 30.0 && db < 60.0, "{db}");
    }
}
