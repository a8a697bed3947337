//! DDS textures: the file layout and header, and BCn encoding.

pub mod encode;
pub mod layout;
pub mod upscale;

pub use layout::{file_size, DdsFormat};
