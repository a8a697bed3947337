//! Chunk downloads shared by every texture that needs them.
//!
//! A chunk is downloaded once however many units want it at the same time
//! (neighbouring textures share their stand-in chunks at lower zoom), and
//! the download is cancelled, giving back its permit, as soon as no unit
//! waits for it any more. A download starts in the class of whoever asked
//! first; when a live reader joins a background download that has not got
//! its answer yet, it is asked again as live work.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::watch;

use super::shared_work::{Claim, SharedWork, Urgency};
use crate::coord::ChunkCoord;
use crate::fetch::HttpClient;
use crate::image::looks_complete;
use crate::provider::TileProvider;
use crate::sched::WorkClass;

/// The chunk's bytes, or `None` when it could not be had (no data there,
/// failures, the provider unavailable).
pub type ChunkResult = Option<Bytes>;

/// Downloads in flight, by chunk.
#[derive(Debug)]
pub struct Downloads {
    http: HttpClient,
    provider: Arc<dyn TileProvider>,
    work: SharedWork<ChunkCoord, ChunkResult>,
}

impl Downloads {
    pub fn new(http: HttpClient, provider: Arc<dyn TileProvider>) -> Self {
        Downloads {
            http,
            provider,
            work: SharedWork::default(),
        }
    }

    pub fn provider(&self) -> &Arc<dyn TileProvider> {
        &self.provider
    }

    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// A claim on the chunk's download; drop it to say it is not wanted.
    pub fn claim(&self, chunk: ChunkCoord, urgency: Urgency) -> Claim<ChunkResult> {
        if chunk.zoom > self.provider.max_zoom() {
            let work: SharedWork<ChunkCoord, ChunkResult> = SharedWork::default();
            // Beyond the provider's zoom: settled at once, nothing to share.
            return work.claim(chunk, urgency, |_| async { None });
        }
        let (http, provider) = (self.http.clone(), Arc::clone(&self.provider));
        self.work.claim(chunk, urgency, move |urgency| {
            download(http, provider, chunk, urgency)
        })
    }

    /// Downloads in flight or waiting for a permit.
    pub fn in_flight(&self) -> usize {
        self.work.len()
    }
}

async fn download(
    http: HttpClient,
    provider: Arc<dyn TileProvider>,
    chunk: ChunkCoord,
    mut urgency: watch::Receiver<Urgency>,
) -> ChunkResult {
    let url = provider.chunk_url(chunk);
    loop {
        let class = if urgency.borrow().is_some() {
            WorkClass::Live
        } else {
            WorkClass::Background
        };
        let attempt = http.get(&url, provider.referer(), class, looks_complete);
        let result = if class == WorkClass::Live {
            attempt.await
        } else {
            tokio::select! {
                result = attempt => result,
                () = super::promoted(&mut urgency) => continue,
            }
        };
        return match result {
            Ok(body) => Some(body),
            Err(e) => {
                tracing::debug!(%chunk, error = %e, "chunk download failed");
                None
            }
        };
    }
}
