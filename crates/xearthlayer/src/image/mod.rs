//! Pixels: decoding chunks, filling the ones that are missing, and the
//! box-filter halving that makes mip levels. All RGBA8, row-major.

pub mod decode;
pub mod resample;

pub use decode::{decode_chunk, looks_complete, ImageError};

/// Bytes per RGBA pixel.
pub const RGBA: usize = 4;
/// Bytes of one decoded 256x256 chunk.
pub const CHUNK_RGBA_LEN: usize = 256 * 256 * RGBA;

/// Colour of imagery that could not be had: a dull green-grey that reads as
/// terrain from a distance rather than as an error.
pub const NEUTRAL_FILL: [u8; 4] = [96, 104, 88, 255];
