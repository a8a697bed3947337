//! The texture service as the filesystem sees it: opening a texture pins its
//! shared entry, so every read of that open file sees the same bytes, and
//! each read builds only what its range needs.

use std::sync::Arc;

use bytes::Bytes;

use super::entry::TextureEntry;
use super::TextureService;
use crate::coord::TextureId;
use crate::fs::TextureSource;

impl TextureSource for TextureService {
    type Handle = Arc<TextureEntry>;

    fn texture_size(&self) -> u64 {
        self.file_size()
    }

    fn open(&self, id: TextureId) -> Arc<TextureEntry> {
        self.entry(&id)
    }

    async fn read(&self, handle: &Arc<TextureEntry>, offset: u64, len: u32) -> Bytes {
        TextureService::read(self, handle, offset..offset.saturating_add(u64::from(len))).await
    }
}
