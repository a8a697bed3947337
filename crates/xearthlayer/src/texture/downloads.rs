//! Chunk downloads shared by every texture that needs them, by source.
//!
//! A chunk is downloaded once however many units want it at the same time
//! (neighbouring textures share their stand-in chunks at lower zoom), and
//! the download is cancelled, giving back its permit, as soon as no unit
//! waits for it any more. A download waits for its permit in line by the
//! oldest read that wants it; when a reader joins a background download
//! that is still waiting, it moves up the line (one already talking to
//! the provider goes on).

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::watch;

use super::shared_work::{Claim, SharedWork};
use crate::coord::ChunkCoord;
use crate::fetch::ImageryClient;
use crate::provider::TileProvider;
use crate::sched::Urgency;

/// The chunk's bytes, or `None` when it could not be had (no data there,
/// failures, the provider unavailable).
pub type ChunkResult = Option<Bytes>;

/// Downloads in flight, by source and chunk.
#[derive(Debug)]
pub struct Downloads {
    client: ImageryClient,
    work: SharedWork<(Arc<str>, ChunkCoord), ChunkResult>,
}

impl Downloads {
    pub fn new(client: ImageryClient) -> Self {
        Downloads {
            client,
            work: SharedWork::default(),
        }
    }

    pub fn client(&self) -> &ImageryClient {
        &self.client
    }

    /// A claim on the chunk's download from `provider`; drop it to say it
    /// is not wanted.
    pub fn claim(
        &self,
        provider: &Arc<dyn TileProvider>,
        chunk: ChunkCoord,
        urgency: Urgency,
    ) -> Claim<ChunkResult> {
        let (client, provider) = (self.client.clone(), Arc::clone(provider));
        let key = (Arc::from(provider.cache_key()), chunk);
        self.work.claim(key, urgency, move |urgency| {
            download(client, provider, chunk, urgency)
        })
    }

    /// Downloads in flight or waiting for a permit.
    pub fn in_flight(&self) -> usize {
        self.work.len()
    }
}

async fn download(
    client: ImageryClient,
    provider: Arc<dyn TileProvider>,
    chunk: ChunkCoord,
    mut urgency: watch::Receiver<Urgency>,
) -> ChunkResult {
    match client.fetch_for(&provider, chunk, &mut urgency).await {
        Ok(body) => Some(body),
        Err(e) => {
            tracing::debug!(%chunk, provider = provider.name(), error = %e, "chunk download failed");
            None
        }
    }
}
