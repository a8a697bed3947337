//! Deterministic synthetic aerial imagery for map chunks.
//!
//! Every pixel is a function of its position on the world map, not of the
//! chunk it belongs to, so a chunk at zoom z-1 looks like its four children at
//! zoom z scaled down 2x. That lets tests compare mip levels built from
//! lower-zoom chunks with downscales of level 0. The content is busy at every
//! scale from a pixel to a whole chunk (land-use patches of water, forest,
//! fields and built-up ground, plus fine texture) so that JPEG sizes and
//! decode costs resemble real provider imagery.
//!
//! The noise is piecewise-bilinear value noise whose lattice cells are
//! power-of-two fractions of the world. Any such octave whose cells span at
//! least one pixel of the coarser zoom averages exactly under a 2x box filter,
//! so only the finest octave of each zoom and rounding differ between levels.

use std::cell::RefCell;

use jpeg_encoder::{ChromaSubsamplingMethod, ColorType, Encoder, SamplingFactor};

/// Pixels along one side of a chunk.
pub const CHUNK_SIDE: usize = 256;
/// JPEG quality of [`chunk_jpeg`].
pub const JPEG_QUALITY: u8 = 85;

/// log2 of [`CHUNK_SIDE`]: world level `zoom + PIXEL_SHIFT` has one-pixel cells.
const PIXEL_SHIFT: u32 = 8;

/// Values of the fields at one point: land, tint, detail, and a spare lane so
/// that the arithmetic maps onto 4-wide vector instructions.
type Lanes = [f32; 4];

/// A sum of value-noise octaves over a range of world levels. Level `l` has
/// lattice cells 1/2^l of the world wide.
struct Field {
    first: u32,
    last: u32,
    /// Amplitude of level `first`; each finer level is multiplied by `falloff`.
    amplitude: f32,
    falloff: f32,
}

/// Which kind of ground a place is: low values water, then forest, fields,
/// built-up. Patches from a few hundred metres to hundreds of kilometres;
/// nothing finer, because sharp class borders that vary within a pixel
/// would make a pixel differ from the mean of the four below it.
const LAND: Field = Field {
    first: 7,
    last: 17,
    amplitude: 0.4,
    falloff: 0.8,
};
/// Variation within a kind of ground: crop types, forest shades.
const TINT: Field = Field {
    first: 10,
    last: 18,
    amplitude: 0.5,
    falloff: 0.85,
};
/// Fine texture: trees, furrows, roofs. Equal weight at every scale down to
/// the pixel, like real ground seen at any zoom.
const DETAIL: Field = Field {
    first: 13,
    last: 28,
    amplitude: 0.38,
    falloff: 1.0,
};
const FIELDS: [Field; 3] = [LAND, TINT, DETAIL];

/// Per-field amplitudes of one world level (0 where a field lacks it).
fn amplitudes(level: u32) -> Lanes {
    let mut out = [0.0; 4];
    for (lane, field) in out.iter_mut().zip(&FIELDS) {
        if (field.first..=field.last).contains(&level) {
            *lane = field.amplitude * field.falloff.powi((level - field.first) as i32);
        }
    }
    out
}

/// Pseudo-random lattice values in [-1, 1) of all fields at one lattice
/// point of a level: one hash, 21 bits per field.
fn lattice(level: u32, ix: u64, iy: u64) -> Lanes {
    let h = hash64(
        (u64::from(level) << 56)
            ^ ix.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ iy.wrapping_mul(0xC2B2_AE3D_27D4_EB4F),
    );
    let scale = 2.0 / (1u32 << 21) as f32;
    // Through i32: converting a u64 to f32 takes several instructions.
    let lane = |shift: u32| ((h >> shift) & 0x1F_FFFF) as i32 as f32 * scale - 1.0;
    [lane(43), lane(22), lane(1), 0.0]
}

/// A 64-bit finaliser (xor-shift-multiply) that spreads every input bit.
pub(crate) fn hash64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^ (h >> 33)
}

fn add_scaled(acc: &mut Lanes, amplitude: &Lanes, value: &Lanes) {
    for ((a, m), v) in acc.iter_mut().zip(amplitude).zip(value) {
        *a += m * v;
    }
}

fn mean2(a: &Lanes, b: &Lanes) -> Lanes {
    [
        0.5 * (a[0] + b[0]),
        0.5 * (a[1] + b[1]),
        0.5 * (a[2] + b[2]),
        0.5 * (a[3] + b[3]),
    ]
}

/// One level at an arbitrary world pixel position, for cells of 2^shift
/// pixels (computed in f64, where scaling by a power of two is exact).
fn bilinear(level: u32, shift: u32, px: u64, py: u64) -> Lanes {
    let scale = 0.5f64.powi(shift as i32);
    let (sx, sy) = (px as f64 * scale, py as f64 * scale);
    let (ix, iy) = (sx.floor() as u64, sy.floor() as u64);
    let (fx, fy) = ((sx - sx.floor()) as f32, (sy - sy.floor()) as f32);
    let weights = [
        (1.0 - fx) * (1.0 - fy),
        fx * (1.0 - fy),
        (1.0 - fx) * fy,
        fx * fy,
    ];
    let mut out = [0.0; 4];
    for (corner, weight) in weights.iter().enumerate() {
        let value = lattice(level, ix + (corner as u64 & 1), iy + (corner as u64 >> 1));
        add_scaled(&mut out, &[*weight; 4], &value);
    }
    out
}

/// Doubles the resolution of the (cells+1)² grid of corner values at the
/// start of `grid` by bilinear interpolation, into the start of `out`.
fn refine(grid: &[Lanes], cells: usize, out: &mut [Lanes]) {
    let (side, new_side) = (cells + 1, 2 * cells + 1);
    let old_rows: Vec<&[Lanes]> = grid[..side * side].chunks_exact(side).collect();
    let mut new_rows = out[..new_side * new_side].chunks_exact_mut(new_side);
    for (j, above) in old_rows.iter().enumerate() {
        // An old row, with midpoints between its points.
        let Some(even) = new_rows.next() else { return };
        for i in 0..cells {
            even[2 * i] = above[i];
            even[2 * i + 1] = mean2(&above[i], &above[i + 1]);
        }
        even[2 * cells] = above[cells];
        // The new row between two old rows is their mean.
        let (Some(below), Some(odd)) = (old_rows.get(j + 1), new_rows.next()) else {
            return;
        };
        let mut left = mean2(&above[0], &below[0]);
        for i in 0..cells {
            let right = mean2(&above[i + 1], &below[i + 1]);
            odd[2 * i] = left;
            odd[2 * i + 1] = mean2(&left, &right);
            left = right;
        }
        odd[2 * cells] = left;
    }
}

thread_local! {
    /// Grid buffers reused from chunk to chunk: a fresh megabyte costs more in
    /// page faults than filling it with noise.
    static SCRATCH: RefCell<[Vec<Lanes>; 2]> = const { RefCell::new([Vec::new(), Vec::new()]) };
}

/// All fields at the corners of the chunk's pixels, a 257x257 grid, left in
/// `grid` (`spare` is working space).
fn corner_grid(zoom: u8, x: u32, y: u32, grid: &mut Vec<Lanes>, spare: &mut Vec<Lanes>) {
    let pixel_level = u32::from(zoom) + PIXEL_SHIFT;
    let (x0, y0) = (u64::from(x) << PIXEL_SHIFT, u64::from(y) << PIXEL_SHIFT);
    let points = (CHUNK_SIDE + 1) * (CHUNK_SIDE + 1);
    grid.resize(points, [0.0; 4]);
    spare.resize(points, [0.0; 4]);
    grid[..4].fill([0.0; 4]);

    // Levels whose cells hold a whole chunk or more are bilinear across it,
    // so their sum is known from the chunk's four corners.
    for level in 0..=u32::from(zoom) {
        let amplitude = amplitudes(level);
        if amplitude == [0.0; 4] {
            continue;
        }
        let shift = pixel_level - level;
        for (corner, value) in grid[..4].iter_mut().enumerate() {
            let cx = x0 + (corner as u64 & 1) * CHUNK_SIDE as u64;
            let cy = y0 + (corner as u64 >> 1) * CHUNK_SIDE as u64;
            add_scaled(value, &amplitude, &bilinear(level, shift, cx, cy));
        }
    }

    // Finer levels: halve the grid spacing (exact, as the sum so far is
    // bilinear within each cell), then add the level's lattice values, which
    // fall on the new grid points.
    let mut cells = 1usize;
    for shift in (0..PIXEL_SHIFT).rev() {
        refine(grid, cells, spare);
        std::mem::swap(grid, spare);
        cells *= 2;
        let level = pixel_level - shift;
        let amplitude = amplitudes(level);
        if amplitude == [0.0; 4] {
            continue;
        }
        let side = cells + 1;
        for (j, row) in grid[..side * side].chunks_exact_mut(side).enumerate() {
            let iy = (y0 >> shift) + j as u64;
            for (ix, value) in ((x0 >> shift)..).zip(row.iter_mut()) {
                add_scaled(value, &amplitude, &lattice(level, ix, iy));
            }
        }
    }
}

/// RGB colours of the kinds of ground.
const WATER: [f32; 3] = [38.0, 62.0, 74.0];
const FOREST_DARK: [f32; 3] = [34.0, 58.0, 36.0];
const FOREST_LIGHT: [f32; 3] = [68.0, 92.0, 52.0];
const CROP_GREEN: [f32; 3] = [98.0, 128.0, 60.0];
const CROP_YELLOW: [f32; 3] = [186.0, 170.0, 108.0];
const CROP_BROWN: [f32; 3] = [138.0, 108.0, 78.0];
const BUILT: [f32; 3] = [150.0, 146.0, 140.0];

/// 0 below `edge`, 1 above it, with a short linear blend: patch borders are
/// sharp like field edges but still a few pixels wide.
fn step(value: f32, edge: f32) -> f32 {
    ((value - edge) * 25.0 + 0.5).clamp(0.0, 1.0)
}

fn lerp(a: f32, b: f32, t: f32) -> f32 {
    a + t * (b - a)
}

/// Colours one row of pixels from the fields at their centres. Written as
/// plain loops over arrays so that the compiler vectorises them.
fn colour_row(fields: &[[f32; CHUNK_SIDE]; 3], out: &mut [u8]) {
    let [land, tint, detail] = fields;
    let (mut shade, mut crop_a, mut crop_b) =
        ([0.0; CHUNK_SIDE], [0.0; CHUNK_SIDE], [0.0; CHUNK_SIDE]);
    let (mut s1, mut s2, mut s3) = ([0.0; CHUNK_SIDE], [0.0; CHUNK_SIDE], [0.0; CHUNK_SIDE]);
    let mut texture = [0.0; CHUNK_SIDE];
    for i in 0..CHUNK_SIDE {
        shade[i] = step(tint[i], 0.0);
        crop_a[i] = step(tint[i], -0.15);
        crop_b[i] = step(tint[i], 0.3);
        s1[i] = step(land[i], -0.38);
        s2[i] = step(land[i], -0.05);
        s3[i] = step(land[i], 0.38);
        // How strongly the texture shows: calm water, rough forest and towns.
        texture[i] = (8.0 + s1[i] * 40.0 - s2[i] * 14.0 + s3[i] * 20.0) * detail[i];
    }
    let mut channel = [0.0f32; CHUNK_SIDE];
    for c in 0..3 {
        let texture_gain = if c == 2 { 0.85 } else { 1.0 };
        for i in 0..CHUNK_SIDE {
            let forest = lerp(FOREST_DARK[c], FOREST_LIGHT[c], shade[i]);
            let crop = lerp(
                lerp(CROP_GREEN[c], CROP_YELLOW[c], crop_a[i]),
                CROP_BROWN[c],
                crop_b[i],
            );
            let base = lerp(
                lerp(lerp(WATER[c], forest, s1[i]), crop, s2[i]),
                BUILT[c],
                s3[i],
            );
            channel[i] = (base + texture_gain * texture[i] + 0.5).clamp(0.0, 255.0);
        }
        for (pixel, value) in out.chunks_exact_mut(3).zip(&channel) {
            // In range after the clamp; truncation completes the rounding.
            pixel[c] = *value as u8;
        }
    }
}

/// The 256x256 RGB pixels (row by row, 3 bytes each) of chunk (`x`, `y`) at
/// `zoom`. Coordinates are not range-checked: the function is defined for any
/// integers, the server checks what it is asked for.
pub fn chunk_rgb(zoom: u8, x: u32, y: u32) -> Vec<u8> {
    let mut rgb = vec![0u8; CHUNK_SIDE * CHUNK_SIDE * 3];
    SCRATCH.with_borrow_mut(|[grid, spare]| {
        corner_grid(zoom, x, y, grid, spare);
        let side = CHUNK_SIDE + 1;
        let rows = grid.chunks_exact(side).zip(grid.chunks_exact(side).skip(1));
        let mut fields = [[0.0f32; CHUNK_SIDE]; 3];
        for ((top, bottom), out) in rows.zip(rgb.chunks_exact_mut(CHUNK_SIDE * 3)) {
            for i in 0..CHUNK_SIDE {
                // Pixel centres sit in the middle of the one-pixel cells.
                let centre = mean2(
                    &mean2(&top[i], &top[i + 1]),
                    &mean2(&bottom[i], &bottom[i + 1]),
                );
                for (field, value) in fields.iter_mut().zip(centre) {
                    field[i] = value;
                }
            }
            colour_row(&fields, out);
        }
    });
    rgb
}

/// The chunk as a baseline JPEG, quality 85, 4:2:0 chroma subsampling, like
/// typical provider imagery.
pub fn chunk_jpeg(zoom: u8, x: u32, y: u32) -> Vec<u8> {
    encode_jpeg(&chunk_rgb(zoom, x, y))
}

/// A chunk of one colour: the filler some providers send where they have
/// no imagery.
pub fn uniform_jpeg(rgb: [u8; 3]) -> Vec<u8> {
    encode_jpeg(&rgb.repeat(CHUNK_SIDE * CHUNK_SIDE))
}

/// A "no imagery" picture: a grey tile with a dark cross, not one colour,
/// so only a marker header tells it from imagery (as with Bing's).
pub fn no_imagery_jpeg() -> Vec<u8> {
    let mut rgb = [200u8, 200, 200].repeat(CHUNK_SIDE * CHUNK_SIDE);
    for i in 0..CHUNK_SIDE {
        for j in [i, CHUNK_SIDE - 1 - i] {
            let at = (i * CHUNK_SIDE + j) * 3;
            rgb[at..at + 3].fill(60);
        }
    }
    encode_jpeg(&rgb)
}

fn encode_jpeg(rgb: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 * 1024);
    let mut encoder = Encoder::new(&mut out, JPEG_QUALITY);
    encoder.set_sampling_factor(SamplingFactor::R_4_2_0);
    encoder.set_chroma_subsampling_method(ChromaSubsamplingMethod::Average);
    let side = CHUNK_SIDE as u16;
    // Encoding a complete in-memory RGB buffer into a Vec cannot fail.
    encoder
        .encode(rgb, side, side, ColorType::Rgb)
        .expect("encoding a full RGB chunk into memory");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn box_downscale(children: [&[u8]; 4]) -> Vec<u8> {
        // children: top-left, top-right, bottom-left, bottom-right.
        let half = CHUNK_SIDE / 2;
        let mut out = vec![0u8; CHUNK_SIDE * CHUNK_SIDE * 3];
        for py in 0..CHUNK_SIDE {
            for px in 0..CHUNK_SIDE {
                let child = children[(py / half) * 2 + px / half];
                let (cx, cy) = ((px % half) * 2, (py % half) * 2);
                for c in 0..3 {
                    let at = |dx: usize, dy: usize| {
                        u32::from(child[((cy + dy) * CHUNK_SIDE + cx + dx) * 3 + c])
                    };
                    let sum = at(0, 0) + at(1, 0) + at(0, 1) + at(1, 1);
                    out[(py * CHUNK_SIDE + px) * 3 + c] = ((sum + 2) / 4) as u8;
                }
            }
        }
        out
    }

    fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
        let total: u64 = a
            .iter()
            .zip(b)
            .map(|(&x, &y)| u64::from(x.abs_diff(y)))
            .sum();
        total as f64 / a.len() as f64
    }

    #[test]
    fn deterministic_and_sized() {
        let a = chunk_rgb(16, 32_500, 22_000);
        assert_eq!(a.len(), CHUNK_SIDE * CHUNK_SIDE * 3);
        assert_eq!(a, chunk_rgb(16, 32_500, 22_000));
        assert_ne!(a, chunk_rgb(16, 32_501, 22_000));
    }

    #[test]
    fn not_flat() {
        let rgb = chunk_rgb(16, 10_370, 25_270);
        let luma: Vec<f64> = rgb.chunks_exact(3).map(|p| f64::from(p[1])).collect();
        let mean = luma.iter().sum::<f64>() / luma.len() as f64;
        let var = luma.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / luma.len() as f64;
        assert!(var.sqrt() > 5.0, "std dev {}", var.sqrt());
    }

    #[test]
    fn parent_matches_downscaled_children() {
        for &(zoom, x, y) in &[
            (16u8, 10_368u32, 25_264u32),
            (13, 4_100, 2_800),
            (19, 262_000, 180_000),
        ] {
            let parent = chunk_rgb(zoom - 1, x / 2, y / 2);
            let (x0, y0) = (x & !1, y & !1);
            let kids = [
                chunk_rgb(zoom, x0, y0),
                chunk_rgb(zoom, x0 + 1, y0),
                chunk_rgb(zoom, x0, y0 + 1),
                chunk_rgb(zoom, x0 + 1, y0 + 1),
            ];
            let down = box_downscale([&kids[0], &kids[1], &kids[2], &kids[3]]);
            let diff = mean_abs_diff(&parent, &down);
            assert!(diff < 6.0, "zoom {zoom}: mean abs diff {diff}");
        }
    }

    #[test]
    fn jpeg_is_baseline_420_and_decodes() {
        let jpeg = chunk_jpeg(16, 10_368, 25_264);
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
        // SOF0 (baseline) with the luma component sampled 2x2.
        let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        assert_eq!(jpeg[sof + 9], 3, "three components");
        assert_eq!(jpeg[sof + 11], 0x22, "luma sampling 2x2");
        let mut decoder = zune_jpeg::JpegDecoder::new(&jpeg[..]);
        let pixels = decoder.decode().unwrap();
        assert_eq!(decoder.dimensions(), Some((256, 256)));
        assert_eq!(pixels.len(), 256 * 256 * 3);
    }
}
