//! A narrow hook for whoever wants to know what X-Plane reads (the
//! prefetcher): which DSF tiles it opens and which texture ranges it reads.
//! Called on the read path, so implementations must be quick and never block.

use std::ops::Range;
use std::path::Path;

use crate::coord::TextureId;

pub trait FsObserver: Send + Sync + 'static {
    /// A real `.dsf` file was opened; `rel` is its path inside the package.
    fn dsf_opened(&self, rel: &Path);
    /// `range` of a virtual texture is about to be read.
    fn texture_read(&self, id: &TextureId, range: Range<u64>);
}
