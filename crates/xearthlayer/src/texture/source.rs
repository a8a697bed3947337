//! The texture service as the filesystem sees it: one handle per open file,
//! which fetches the texture once and then serves every read of that handle
//! as a zero-copy slice of the same bytes, so a reader never sees the file
//! change under it.

use bytes::Bytes;
use tokio::sync::OnceCell;

use super::TextureService;
use crate::coord::TextureId;
use crate::fs::TextureSource;

/// One open texture file.
#[derive(Debug)]
pub struct TextureHandle {
    id: TextureId,
    bytes: OnceCell<Bytes>,
}

impl TextureSource for TextureService {
    type Handle = TextureHandle;

    fn texture_size(&self) -> u64 {
        self.file_size()
    }

    fn open(&self, id: TextureId) -> TextureHandle {
        TextureHandle {
            id,
            bytes: OnceCell::new(),
        }
    }

    async fn read(&self, handle: &TextureHandle, offset: u64, len: u32) -> Bytes {
        let bytes = handle
            .bytes
            .get_or_init(|| async { self.texture(&handle.id).await.bytes })
            .await;
        let size = bytes.len() as u64;
        let start = offset.min(size);
        let end = offset.saturating_add(u64::from(len)).min(size);
        self.metrics().bytes_read.add(end - start);
        bytes.slice(start as usize..end as usize)
    }
}
