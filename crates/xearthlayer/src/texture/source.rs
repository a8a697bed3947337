//! The texture service as the filesystem sees it: opening a texture pins its
//! shared entry, so every read of that open file sees the same bytes, and
//! each read builds only what its range needs. The reads of one open file
//! that follow each other closely are one [`Visit`]: one place in line and
//! one cap.

use std::sync::Arc;

use bytes::Bytes;

use super::entry::TextureEntry;
use super::{TextureService, Visit};
use crate::coord::TextureId;
use crate::fs::TextureSource;

/// One open texture file.
#[derive(Debug)]
pub struct OpenTexture {
    entry: Arc<TextureEntry>,
    visit: Visit,
}

impl TextureSource for TextureService {
    type Handle = OpenTexture;

    fn texture_size(&self) -> u64 {
        self.file_size()
    }

    fn open(&self, id: TextureId) -> OpenTexture {
        OpenTexture {
            entry: self.entry(&id),
            visit: Visit::default(),
        }
    }

    async fn read(&self, open: &OpenTexture, offset: u64, len: u32) -> Bytes {
        let range = offset..offset.saturating_add(u64::from(len));
        let since = open.visit.begin_read();
        let bytes = self.read_in_visit(&open.entry, range, since).await;
        open.visit.end_read();
        bytes
    }
}
