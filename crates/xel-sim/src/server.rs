//! A local imagery server: real HTTP/1.1 on 127.0.0.1 serving the synthetic
//! chunks of [`crate::imagery`], with latency and faults that can be changed
//! while it runs, and counters of what it was asked. Stands in for a tile
//! provider in tests, benchmarks and the offline demo.
//!
//! Route: `GET /tiles/{z}/{x}/{y}.jpg` (or `.jpeg`); anything else is a 400,
//! other methods a 405. Faults, checked in this order for each request:
//! - a burst set with [`ImageryServer::answer_next`]: the next N requests
//!   answer 503 or 429;
//! - `not_found_zooms`: every tile at those zooms 404s (no coverage there);
//! - `filler_zooms`: every tile at those zooms is the uniform filler;
//! - `not_found`: fixed per tile (the same tile always 404s, like a provider
//!   with no coverage there);
//! - drawn per request, so a retry can succeed: `server_error` (503),
//!   `corrupt` (200 with a body no decoder accepts), `hang` (no answer until
//!   the server stops), `throttle` (429), `reset` (the connection is closed
//!   without an answer), `drip` (200 whose body comes one byte per
//!   `drip_interval`), `filler_marked` (200 with a "no imagery" picture and
//!   Bing's marker header `X-VE-Tile-Info: no-tile`) and `filler_uniform`
//!   (200 with a tile of one colour). They are shares of one draw, so their
//!   sum should not exceed 1. 429s and 503s carry `Retry-After` when
//!   `retry_after_secs` is set.
//!
//! Every answer, errors included, waits `latency ± jitter` first. With a
//! bandwidth set ([`ImageryServer::set_bandwidth`]) answers then queue for
//! one shared link and each takes its body's transmission time on it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{header, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use xearthlayer::coord::{ChunkCoord, MAX_ZOOM};

use crate::imagery::{chunk_jpeg, hash64, no_imagery_jpeg, uniform_jpeg};

/// Encoded chunks kept in memory (about 14 KiB each): the server shares the
/// machine's cores with the service under test, so it encodes each chunk once.
/// [`ImageryServer::set_cache_entries`] changes it.
const CACHE_ENTRIES: usize = 4096;
/// How long a hung request waits: in practice until the server stops.
const HANG: Duration = Duration::from_secs(3600);
/// The header Bing marks its "no imagery" tiles with.
pub const FILLER_MARKER: (&str, &str) = ("x-ve-tile-info", "no-tile");
/// Colour of the uniform filler tile.
pub const FILLER_COLOUR: [u8; 3] = [14, 33, 58];

/// How the server behaves when it starts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerConfig {
    /// Delay before every answer.
    pub latency: Duration,
    /// The delay varies uniformly by up to this much either way.
    pub jitter: Duration,
    pub faults: Faults,
    /// Varies which tiles are missing and which requests fail.
    pub seed: u64,
}

/// Fault probabilities, each from 0 to 1. See the module documentation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    pub server_error: f64,
    pub not_found: f64,
    pub corrupt: f64,
    pub hang: f64,
    pub throttle: f64,
    pub reset: f64,
    pub drip: f64,
    pub filler_marked: f64,
    pub filler_uniform: f64,
    /// Zooms with no coverage at all: bit `z` set means zoom `z` 404s
    /// (see [`Faults::zooms`]).
    pub not_found_zooms: u32,
    /// Zooms where every tile is the uniform filler (200, one colour).
    pub filler_zooms: u32,
    /// `Retry-After` seconds of 429s and 503s; 0 for none.
    pub retry_after_secs: u32,
    /// Time per body byte of a drip; zero means one second.
    pub drip_interval: Duration,
}

impl Faults {
    /// The mask of `zooms` for [`Faults::not_found_zooms`].
    pub fn zooms(zooms: impl IntoIterator<Item = u8>) -> u32 {
        zooms
            .into_iter()
            .filter(|&z| z < 32)
            .fold(0, |mask, z| mask | 1 << z)
    }
}

/// A snapshot of the server's counters. Every request is counted in
/// `requests` and in exactly one of `ok`, `errors` (injected 503s),
/// `not_found`, `corrupt`, `hung` and `bad_requests` as soon as it arrives,
/// before its latency.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerStats {
    pub requests: u64,
    /// Well-formed tile requests by zoom.
    pub by_zoom: BTreeMap<u8, u64>,
    /// Requests being handled now, including those waiting out latency.
    pub in_flight: u64,
    /// Most requests in flight at once since start or the last reset.
    pub peak_in_flight: u64,
    pub ok: u64,
    pub errors: u64,
    pub not_found: u64,
    pub corrupt: u64,
    pub hung: u64,
    /// 429 answers, injected bursts included (which count in `errors` when 503).
    pub throttled: u64,
    /// Connections closed without an answer.
    pub reset: u64,
    pub dripped: u64,
    /// Filler answers, marked and uniform.
    pub filler: u64,
    /// Malformed paths, out-of-range tiles and wrong methods.
    pub bad_requests: u64,
    /// Body bytes of all answers.
    pub bytes_sent: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    by_zoom: [AtomicU64; MAX_ZOOM as usize + 1],
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
    ok: AtomicU64,
    errors: AtomicU64,
    not_found: AtomicU64,
    corrupt: AtomicU64,
    hung: AtomicU64,
    throttled: AtomicU64,
    reset: AtomicU64,
    dripped: AtomicU64,
    filler: AtomicU64,
    bad_requests: AtomicU64,
    bytes_sent: AtomicU64,
}

/// Marks one request in flight for as long as it lives, also when its
/// connection is dropped mid-request.
struct InFlight<'a>(&'a Counters);

impl<'a> InFlight<'a> {
    fn enter(counters: &'a Counters) -> Self {
        let now = counters.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        counters.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(counters)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    ServerError,
    NotFound,
    Corrupt,
    Hang,
    Throttle,
    Reset,
    Drip,
    FillerMarked,
    FillerUniform,
    BadRequest,
    WrongMethod,
}

/// Encoded chunks, first in first out.
struct JpegCache {
    map: HashMap<ChunkCoord, Bytes>,
    order: VecDeque<ChunkCoord>,
    capacity: usize,
}

impl Default for JpegCache {
    fn default() -> Self {
        JpegCache {
            map: HashMap::new(),
            order: VecDeque::new(),
            capacity: CACHE_ENTRIES,
        }
    }
}

impl JpegCache {
    fn insert(&mut self, tile: ChunkCoord, jpeg: Bytes) {
        if self.map.contains_key(&tile) {
            return;
        }
        self.evict_to(self.capacity.saturating_sub(1));
        if self.capacity == 0 {
            return;
        }
        self.order.push_back(tile);
        self.map.insert(tile, jpeg);
    }

    /// Drops the oldest entries until at most `entries` are left.
    fn evict_to(&mut self, entries: usize) {
        while self.map.len() > entries {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.map.remove(&oldest);
        }
    }
}

/// State shared by the accept loop, every request and the owner's handle.
struct Shared {
    seed: u64,
    latency_ns: AtomicU64,
    jitter_ns: AtomicU64,
    faults: Mutex<Faults>,
    /// Numbers requests for the per-request draws; never reset.
    sequence: AtomicU64,
    /// Requests still to answer with the burst status.
    burst_left: AtomicU64,
    burst_status: AtomicU64,
    counters: Counters,
    cache: Mutex<JpegCache>,
    /// Bytes per second of the shared link; 0 for no limit.
    bandwidth: AtomicU64,
    /// When the link is next free, in nanoseconds from `epoch`.
    link_free_ns: AtomicU64,
    epoch: tokio::time::Instant,
}

/// Locks a mutex even if a panicking thread poisoned it: the data (fault
/// settings, a cache of immutable entries) is valid at every step.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A uniform draw in [0, 1) from a hash.
fn unit(hash: u64) -> f64 {
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl Shared {
    fn decide(&self, tile: ChunkCoord, sequence: u64) -> Outcome {
        let faults = *lock(&self.faults);
        let in_burst = self
            .burst_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if in_burst {
            return match self.burst_status.load(Ordering::SeqCst) {
                429 => Outcome::Throttle,
                _ => Outcome::ServerError,
            };
        }
        if tile.zoom < 32 && faults.not_found_zooms & (1 << tile.zoom) != 0 {
            return Outcome::NotFound;
        }
        if tile.zoom < 32 && faults.filler_zooms & (1 << tile.zoom) != 0 {
            return Outcome::FillerUniform;
        }
        let tile_hash = hash64(
            self.seed
                ^ 0x6E6F_7420_666F_756E
                ^ (u64::from(tile.zoom) << 56)
                ^ u64::from(tile.x).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ u64::from(tile.y).wrapping_mul(0xC2B2_AE3D_27D4_EB4F),
        );
        if unit(tile_hash) < faults.not_found {
            return Outcome::NotFound;
        }
        let draw = unit(hash64(self.seed ^ 0x6661_756C_7473 ^ sequence));
        let mut threshold = faults.server_error;
        if draw < threshold {
            return Outcome::ServerError;
        }
        threshold += faults.corrupt;
        if draw < threshold {
            return Outcome::Corrupt;
        }
        for (share, outcome) in [
            (faults.hang, Outcome::Hang),
            (faults.throttle, Outcome::Throttle),
            (faults.reset, Outcome::Reset),
            (faults.drip, Outcome::Drip),
            (faults.filler_marked, Outcome::FillerMarked),
            (faults.filler_uniform, Outcome::FillerUniform),
        ] {
            threshold += share;
            if draw < threshold {
                return outcome;
            }
        }
        Outcome::Ok
    }

    fn count(&self, outcome: Outcome) {
        let c = &self.counters;
        let counter = match outcome {
            Outcome::Ok => &c.ok,
            Outcome::ServerError => &c.errors,
            Outcome::NotFound => &c.not_found,
            Outcome::Corrupt => &c.corrupt,
            Outcome::Hang => &c.hung,
            Outcome::Throttle => &c.throttled,
            Outcome::Reset => &c.reset,
            Outcome::Drip => &c.dripped,
            Outcome::FillerMarked | Outcome::FillerUniform => &c.filler,
            Outcome::BadRequest | Outcome::WrongMethod => &c.bad_requests,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// This request's delay: latency plus a uniform share of ±jitter.
    fn delay(&self, sequence: u64) -> Duration {
        let latency = self.latency_ns.load(Ordering::Relaxed) as f64;
        let jitter = self.jitter_ns.load(Ordering::Relaxed) as f64;
        let draw = unit(hash64(self.seed ^ 0x6A69_7474_6572 ^ sequence));
        let nanos = (latency + jitter * (2.0 * draw - 1.0)).max(0.0);
        Duration::from_nanos(nanos as u64)
    }

    /// The chunk's JPEG, from the cache or encoded off the async threads.
    async fn jpeg(&self, tile: ChunkCoord) -> Option<Bytes> {
        if let Some(jpeg) = lock(&self.cache).map.get(&tile) {
            return Some(jpeg.clone());
        }
        let encoded = tokio::task::spawn_blocking(move || chunk_jpeg(tile.zoom, tile.x, tile.y));
        match encoded.await {
            Ok(jpeg) => {
                let jpeg = Bytes::from(jpeg);
                lock(&self.cache).insert(tile, jpeg.clone());
                Some(jpeg)
            }
            Err(error) => {
                tracing::error!(%tile, %error, "encoding a test chunk failed");
                None
            }
        }
    }

    /// Waits until `len` body bytes have crossed the link: answers take it
    /// one after another, each for its transmission time.
    async fn transmit(&self, len: u64) {
        let rate = self.bandwidth.load(Ordering::Relaxed);
        if rate == 0 || len == 0 {
            return;
        }
        let cost =
            u64::try_from(u128::from(len) * 1_000_000_000 / u128::from(rate)).unwrap_or(u64::MAX);
        let now = nanos(self.epoch.elapsed());
        let free = self
            .link_free_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |free| {
                Some(free.max(now).saturating_add(cost))
            })
            .unwrap_or_else(|free| free);
        let done = free.max(now).saturating_add(cost);
        tokio::time::sleep_until(self.epoch + Duration::from_nanos(done)).await;
    }

    fn snapshot(&self) -> ServerStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::SeqCst);
        let by_zoom = (0u8..)
            .zip(&c.by_zoom)
            .map(|(zoom, n)| (zoom, get(n)))
            .filter(|&(_, n)| n > 0)
            .collect();
        ServerStats {
            requests: get(&c.requests),
            by_zoom,
            in_flight: get(&c.in_flight),
            peak_in_flight: get(&c.peak_in_flight),
            ok: get(&c.ok),
            errors: get(&c.errors),
            not_found: get(&c.not_found),
            corrupt: get(&c.corrupt),
            hung: get(&c.hung),
            throttled: get(&c.throttled),
            reset: get(&c.reset),
            dripped: get(&c.dripped),
            filler: get(&c.filler),
            bad_requests: get(&c.bad_requests),
            bytes_sent: get(&c.bytes_sent),
        }
    }

    fn reset(&self) {
        let c = &self.counters;
        let counters = [
            &c.requests,
            &c.ok,
            &c.errors,
            &c.not_found,
            &c.corrupt,
            &c.hung,
            &c.throttled,
            &c.reset,
            &c.dripped,
            &c.filler,
            &c.bad_requests,
            &c.bytes_sent,
        ];
        for counter in counters.into_iter().chain(&c.by_zoom) {
            counter.store(0, Ordering::SeqCst);
        }
        // Requests still running keep counting down from the gauge.
        c.peak_in_flight
            .store(c.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

/// `/tiles/{z}/{x}/{y}.jpg` or `.jpeg`, with the tile inside the world.
fn parse_tile(path: &str) -> Option<ChunkCoord> {
    let mut parts = path.strip_prefix("/tiles/")?.split('/');
    let (z, x, file) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let y = file
        .strip_suffix(".jpg")
        .or_else(|| file.strip_suffix(".jpeg"))?;
    let number = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    let zoom = u8::try_from(number(z)?).ok().filter(|&z| z <= MAX_ZOOM)?;
    let (x, y) = (number(x)?, number(y)?);
    let tiles = 1u32 << zoom;
    (x < tiles && y < tiles).then_some(ChunkCoord { zoom, x, y })
}

/// The first third of a real JPEG with its frame size zeroed: a download cut
/// short and damaged, which no decoder accepts.
fn garble(jpeg: &[u8]) -> Bytes {
    let mut body = jpeg[..jpeg.len() / 3].to_vec();
    // SOF0: marker, length (2), precision (1), height (2), width (2).
    if let Some(sof) = body.windows(2).position(|w| w == [0xFF, 0xC0]) {
        if let Some(size) = body.get_mut(sof + 5..sof + 9) {
            size.fill(0);
        }
    }
    Bytes::from(body)
}

/// A body sent one byte at a time, `interval` apart: a provider that drips.
pub struct Drip {
    data: Bytes,
    interval: Duration,
    next: Pin<Box<tokio::time::Sleep>>,
}

impl Drip {
    fn new(data: Bytes, interval: Duration) -> Drip {
        Drip {
            data,
            interval,
            next: Box::pin(tokio::time::sleep(interval)),
        }
    }
}

impl hyper::body::Body for Drip {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.data.is_empty() {
            return Poll::Ready(None);
        }
        if self.next.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let deadline = tokio::time::Instant::now() + self.interval;
        self.next.as_mut().reset(deadline);
        let byte = self.data.split_to(1);
        Poll::Ready(Some(Ok(Frame::data(byte))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.data.len() as u64)
    }
}

/// What the server answers with: whole bodies, or drips.
type Body = Either<Full<Bytes>, Drip>;

fn response(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Either::Left(Full::new(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

fn text(status: StatusCode, message: &'static str) -> Response<Body> {
    response(status, "text/plain", Bytes::from_static(message.as_bytes()))
}

/// `Err` closes the connection without an answer (the reset fault).
async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> io::Result<Response<Body>> {
    let _in_flight = InFlight::enter(&shared.counters);
    shared.counters.requests.fetch_add(1, Ordering::Relaxed);
    let sequence = shared.sequence.fetch_add(1, Ordering::Relaxed);
    let tile = parse_tile(request.uri().path());
    let outcome = match (request.method(), tile) {
        (&Method::GET | &Method::HEAD, Some(tile)) => {
            shared.counters.by_zoom[usize::from(tile.zoom)].fetch_add(1, Ordering::Relaxed);
            shared.decide(tile, sequence)
        }
        (&Method::GET | &Method::HEAD, None) => Outcome::BadRequest,
        _ => Outcome::WrongMethod,
    };
    shared.count(outcome);

    let delay = tokio::time::sleep(shared.delay(sequence));
    let retry_after = lock(&shared.faults).retry_after_secs;
    let drip_interval = match lock(&shared.faults).drip_interval {
        Duration::ZERO => Duration::from_secs(1),
        interval => interval,
    };
    let answer = match (outcome, tile) {
        (Outcome::Ok | Outcome::Corrupt | Outcome::Drip, Some(tile)) => {
            // Encode while the latency runs, as a provider would.
            let (_, jpeg) = tokio::join!(delay, shared.jpeg(tile));
            match (jpeg, outcome) {
                (Some(jpeg), Outcome::Ok) => response(StatusCode::OK, "image/jpeg", jpeg),
                (Some(jpeg), Outcome::Drip) => {
                    let mut answer = response(StatusCode::OK, "image/jpeg", Bytes::new());
                    *answer.body_mut() = Either::Right(Drip::new(jpeg, drip_interval));
                    answer
                }
                (Some(jpeg), _) => response(StatusCode::OK, "image/jpeg", garble(&jpeg)),
                // Only if encoding panicked (a bug) or the runtime is
                // stopping; already counted as ok or corrupt.
                (None, _) => text(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n"),
            }
        }
        (Outcome::Hang, _) => {
            tokio::time::sleep(HANG).await;
            text(StatusCode::GATEWAY_TIMEOUT, "hung\n")
        }
        (Outcome::Reset, _) => {
            delay.await;
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "injected connection reset",
            ));
        }
        (Outcome::FillerMarked | Outcome::FillerUniform, _) => {
            delay.await;
            let picture = match outcome {
                Outcome::FillerMarked => no_imagery_jpeg(),
                _ => uniform_jpeg(FILLER_COLOUR),
            };
            let mut answer = response(StatusCode::OK, "image/jpeg", Bytes::from(picture));
            if outcome == Outcome::FillerMarked {
                answer.headers_mut().insert(
                    FILLER_MARKER.0,
                    header::HeaderValue::from_static(FILLER_MARKER.1),
                );
            }
            answer
        }
        (outcome, _) => {
            delay.await;
            let mut answer = match outcome {
                Outcome::ServerError => {
                    text(StatusCode::SERVICE_UNAVAILABLE, "injected server error\n")
                }
                Outcome::Throttle => text(StatusCode::TOO_MANY_REQUESTS, "slow down\n"),
                Outcome::NotFound => text(StatusCode::NOT_FOUND, "no coverage\n"),
                Outcome::WrongMethod => text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n"),
                _ => text(StatusCode::BAD_REQUEST, "expected /tiles/{z}/{x}/{y}.jpg\n"),
            };
            let throttled = matches!(outcome, Outcome::ServerError | Outcome::Throttle);
            if throttled && retry_after > 0 {
                answer
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from(retry_after));
            }
            answer
        }
    };
    let body_len = hyper::body::Body::size_hint(answer.body())
        .exact()
        .unwrap_or(0);
    shared
        .counters
        .bytes_sent
        .fetch_add(body_len, Ordering::Relaxed);
    shared.transmit(body_len).await;
    Ok(answer)
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Dropping the set (when this task is aborted) aborts every connection.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Small answers: send them now rather than wait for more.
                    let _ = stream.set_nodelay(true);
                    let shared = shared.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |request| handle(shared.clone(), request));
                        let served = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                        if let Err(error) = served {
                            tracing::debug!(%error, "imagery server connection ended");
                        }
                    });
                }
                Err(error) => {
                    // Out of file descriptors, usually: back off, don't spin.
                    tracing::warn!(%error, "imagery server accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// The server, running as tasks on the runtime that started it. Stops when
/// dropped or shut down.
pub struct ImageryServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl ImageryServer {
    /// Binds 127.0.0.1 on a free port and starts serving on the current
    /// tokio runtime.
    pub async fn start(config: ServerConfig) -> io::Result<ImageryServer> {
        Self::launch(config)
    }

    /// Starts serving; must run inside a tokio runtime context.
    fn launch(config: ServerConfig) -> io::Result<ImageryServer> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            seed: config.seed,
            latency_ns: AtomicU64::new(nanos(config.latency)),
            jitter_ns: AtomicU64::new(nanos(config.jitter)),
            faults: Mutex::new(config.faults),
            sequence: AtomicU64::new(0),
            burst_left: AtomicU64::new(0),
            burst_status: AtomicU64::new(503),
            counters: Counters::default(),
            cache: Mutex::new(JpegCache::default()),
            bandwidth: AtomicU64::new(0),
            link_free_ns: AtomicU64::new(0),
            epoch: tokio::time::Instant::now(),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        tracing::info!(%addr, "imagery server listening");
        Ok(ImageryServer { addr, shared, task })
    }

    /// URL template for the service's provider configuration:
    /// `http://127.0.0.1:PORT/tiles/{z}/{x}/{y}.jpg`.
    pub fn url_template(&self) -> String {
        format!("http://{}/tiles/{{z}}/{{x}}/{{y}}.jpg", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stats(&self) -> ServerStats {
        self.shared.snapshot()
    }

    /// Zeroes the counters; `peak_in_flight` restarts from the requests now
    /// in flight.
    pub fn reset_stats(&self) {
        self.shared.reset();
    }

    /// Applies to requests that arrive from now on.
    pub fn set_latency(&self, latency: Duration, jitter: Duration) {
        self.shared
            .latency_ns
            .store(nanos(latency), Ordering::Relaxed);
        self.shared
            .jitter_ns
            .store(nanos(jitter), Ordering::Relaxed);
    }

    /// Applies to requests that arrive from now on.
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.shared.faults) = faults;
    }

    /// The next `count` requests answer `status` (503 or 429; with
    /// `Retry-After` when the faults set one), whatever else is set: a
    /// burst of throttling.
    pub fn answer_next(&self, count: u64, status: u16) {
        self.shared
            .burst_status
            .store(u64::from(status), Ordering::SeqCst);
        self.shared.burst_left.store(count, Ordering::SeqCst);
    }

    /// How many encoded chunks to keep (4096 at start): a benchmark that
    /// warms the server with every chunk it will ask for needs room for all.
    pub fn set_cache_entries(&self, entries: usize) {
        let mut cache = lock(&self.shared.cache);
        cache.capacity = entries;
        cache.evict_to(entries);
    }

    /// Bytes per second all answers share from now on (a provider's or the
    /// user's link); 0 for no limit, the default.
    pub fn set_bandwidth(&self, bytes_per_second: u64) {
        self.shared
            .bandwidth
            .store(bytes_per_second, Ordering::Relaxed);
    }

    /// Stops accepting and drops every connection, hung requests included.
    pub async fn shutdown(mut self) {
        self.task.abort();
        // Cancelled is the expected end; nothing else can come back.
        let _ = (&mut self.task).await;
    }
}

impl Drop for ImageryServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The server on a dedicated tokio runtime with one worker thread (plus
/// blocking threads for encoding), for callers without a runtime: benches,
/// the demo. Stops when dropped.
pub struct BackgroundServer {
    server: Option<ImageryServer>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// Starts an [`ImageryServer`] on its own runtime. May be called from inside
/// another runtime too.
pub fn start_in_background(config: ServerConfig) -> io::Result<BackgroundServer> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("xel-imagery-server")
        .enable_all()
        .build()?;
    let server = {
        let _context = runtime.enter();
        ImageryServer::launch(config)?
    };
    Ok(BackgroundServer {
        server: Some(server),
        runtime: Some(runtime),
    })
}

impl BackgroundServer {
    fn server(&self) -> &ImageryServer {
        // Only `drop` takes it out.
        self.server.as_ref().expect("server runs until dropped")
    }

    /// See [`ImageryServer::url_template`].
    pub fn url_template(&self) -> String {
        self.server().url_template()
    }

    pub fn addr(&self) -> SocketAddr {
        self.server().addr()
    }

    pub fn stats(&self) -> ServerStats {
        self.server().stats()
    }

    /// See [`ImageryServer::reset_stats`].
    pub fn reset_stats(&self) {
        self.server().reset_stats();
    }

    pub fn set_latency(&self, latency: Duration, jitter: Duration) {
        self.server().set_latency(latency, jitter);
    }

    pub fn set_faults(&self, faults: Faults) {
        self.server().set_faults(faults);
    }

    /// See [`ImageryServer::set_cache_entries`].
    pub fn set_cache_entries(&self, entries: usize) {
        self.server().set_cache_entries(entries);
    }

    /// See [`ImageryServer::answer_next`].
    pub fn answer_next(&self, count: u64, status: u16) {
        self.server().answer_next(count, status);
    }

    /// See [`ImageryServer::set_bandwidth`].
    pub fn set_bandwidth(&self, bytes_per_second: u64) {
        self.server().set_bandwidth(bytes_per_second);
    }

    /// Stops the server (as dropping it does).
    pub fn shutdown(self) {}
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        drop(self.server.take());
        // Without waiting, so that dropping inside async code cannot panic.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// A minimal HTTP/1.1 GET: status and body.
    async fn get(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).await.unwrap();
        parse_reply(&reply)
    }

    fn parse_reply(reply: &[u8]) -> (u16, Vec<u8>) {
        let end = reply.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = std::str::from_utf8(&reply[..end]).unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, reply[end + 4..].to_vec())
    }

    fn decodes(jpeg: &[u8]) -> bool {
        let mut decoder = zune_jpeg::JpegDecoder::new(jpeg);
        decoder.decode().is_ok() && decoder.dimensions() == Some((256, 256))
    }

    async fn server(config: ServerConfig) -> ImageryServer {
        ImageryServer::start(config).await.unwrap()
    }

    #[tokio::test]
    async fn serves_the_same_decodable_jpeg_twice() {
        let server = server(ServerConfig::default()).await;
        assert!(server.url_template().ends_with("/tiles/{z}/{x}/{y}.jpg"));
        let (status, first) = get(server.addr(), "/tiles/16/10368/25264.jpg").await;
        assert_eq!(status, 200);
        assert!(decodes(&first));
        let (_, second) = get(server.addr(), "/tiles/16/10368/25264.jpeg").await;
        assert_eq!(first, second);
        assert_eq!(first, chunk_jpeg(16, 10368, 25264));
        let (_, other) = get(server.addr(), "/tiles/15/5184/12632.jpg").await;
        assert_ne!(first, other);

        let stats = server.stats();
        assert_eq!((stats.requests, stats.ok, stats.in_flight), (3, 3, 0));
        assert_eq!(stats.by_zoom, BTreeMap::from([(15, 1), (16, 2)]));
        assert_eq!(stats.bytes_sent, (first.len() * 2 + other.len()) as u64);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn rejects_bad_paths() {
        let server = server(ServerConfig::default()).await;
        for path in [
            "/",
            "/tiles/16/10368/25264.png",
            "/tiles/16/65536/0.jpg",
            "/tiles/3/0/8.jpg",
            "/tiles/23/0/0.jpg",
            "/tiles/-1/0/0.jpg",
            "/tiles/16/a/0.jpg",
            "/tiles/16/1/2/3.jpg",
            "/tiles/16/+1/2.jpg",
        ] {
            assert_eq!(get(server.addr(), path).await.0, 400, "{path}");
        }
        let stats = server.stats();
        assert_eq!((stats.requests, stats.bad_requests), (9, 9));
        assert!(stats.by_zoom.is_empty());
    }

    #[tokio::test]
    async fn missing_tiles_are_missing_every_time() {
        let faults = Faults {
            not_found: 1.0,
            ..Faults::default()
        };
        let server = server(ServerConfig {
            faults,
            ..ServerConfig::default()
        })
        .await;
        for i in 0..10 {
            assert_eq!(
                get(server.addr(), &format!("/tiles/14/{i}/7.jpg")).await.0,
                404
            );
        }
        // At 30 %, the same tiles are missing on every request.
        server.set_faults(Faults {
            not_found: 0.3,
            ..Faults::default()
        });
        let mut missing = Vec::new();
        for i in 0..40 {
            missing.push(get(server.addr(), &format!("/tiles/14/{i}/7.jpg")).await.0 == 404);
        }
        for (i, &was) in missing.iter().enumerate() {
            let again = get(server.addr(), &format!("/tiles/14/{i}/7.jpg")).await.0 == 404;
            assert_eq!(was, again, "tile {i}");
        }
        let count = missing.iter().filter(|&&m| m).count();
        assert!((4..=24).contains(&count), "{count} of 40 missing");
    }

    #[tokio::test]
    async fn server_errors_are_per_request_and_counted() {
        let faults = Faults {
            server_error: 0.5,
            ..Faults::default()
        };
        let server = server(ServerConfig {
            faults,
            seed: 7,
            ..ServerConfig::default()
        })
        .await;
        let mut failed = 0;
        for _ in 0..200 {
            match get(server.addr(), "/tiles/12/2000/1400.jpg").await.0 {
                503 => failed += 1,
                status => assert_eq!(status, 200),
            }
        }
        assert!((60..=140).contains(&failed), "{failed} of 200 failed");
        let stats = server.stats();
        assert_eq!(stats.requests, 200);
        assert_eq!(stats.errors, failed);
        assert_eq!(stats.ok + stats.errors, stats.requests);
        assert_eq!(stats.by_zoom, BTreeMap::from([(12, 200)]));

        server.reset_stats();
        assert_eq!(server.stats(), ServerStats::default());
    }

    #[tokio::test]
    async fn corrupt_bodies_do_not_decode() {
        let faults = Faults {
            corrupt: 1.0,
            ..Faults::default()
        };
        let server = server(ServerConfig {
            faults,
            ..ServerConfig::default()
        })
        .await;
        let (status, body) = get(server.addr(), "/tiles/16/10368/25264.jpg").await;
        assert_eq!(status, 200);
        assert!(!body.is_empty() && !decodes(&body));
        assert_eq!(server.stats().corrupt, 1);
    }

    #[tokio::test]
    async fn hung_requests_never_answer() {
        let faults = Faults {
            hang: 1.0,
            ..Faults::default()
        };
        let server = server(ServerConfig {
            faults,
            ..ServerConfig::default()
        })
        .await;
        let request = get(server.addr(), "/tiles/16/10368/25264.jpg");
        let answered = tokio::time::timeout(Duration::from_millis(300), request).await;
        assert!(answered.is_err());
        let stats = server.stats();
        assert_eq!((stats.hung, stats.ok), (1, 0));
        server.shutdown().await;
    }

    /// A minimal HTTP/1.1 GET: the head (status line and headers) and body,
    /// or `None` when the connection closes without an answer.
    async fn get_head(addr: SocketAddr, path: &str) -> Option<(String, Vec<u8>)> {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply).await;
        let end = reply.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&reply[..end]).to_lowercase();
        Some((head, reply[end + 4..].to_vec()))
    }

    #[tokio::test]
    async fn every_switchable_fault_answers_as_documented() {
        let server = server(ServerConfig::default()).await;
        let path = "/tiles/16/10368/25264.jpg";
        let only = |f: Faults| server.set_faults(f);

        only(Faults {
            not_found_zooms: Faults::zooms([16, 17]),
            ..Faults::default()
        });
        assert!(get_head(server.addr(), path)
            .await
            .unwrap()
            .0
            .starts_with("http/1.1 404"));
        let (head, _) = get_head(server.addr(), "/tiles/15/5184/12632.jpg")
            .await
            .unwrap();
        assert!(head.starts_with("http/1.1 200"), "{head}");

        only(Faults {
            throttle: 1.0,
            retry_after_secs: 7,
            ..Faults::default()
        });
        let (head, _) = get_head(server.addr(), path).await.unwrap();
        assert!(
            head.starts_with("http/1.1 429") && head.contains("retry-after: 7"),
            "{head}"
        );

        only(Faults {
            reset: 1.0,
            ..Faults::default()
        });
        assert!(get_head(server.addr(), path).await.is_none());

        only(Faults {
            filler_marked: 1.0,
            ..Faults::default()
        });
        let (head, body) = get_head(server.addr(), path).await.unwrap();
        assert!(head.contains("x-ve-tile-info: no-tile"), "{head}");
        assert!(decodes(&body));

        only(Faults {
            filler_uniform: 1.0,
            ..Faults::default()
        });
        let (head, body) = get_head(server.addr(), path).await.unwrap();
        assert!(!head.contains("x-ve-tile-info"));
        assert_eq!(body, uniform_jpeg(FILLER_COLOUR));

        only(Faults {
            drip: 1.0,
            drip_interval: Duration::from_millis(20),
            ..Faults::default()
        });
        let mut stream = TcpStream::connect(server.addr()).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reply = Vec::new();
        let reading = stream.read_to_end(&mut reply);
        assert!(tokio::time::timeout(Duration::from_millis(300), reading)
            .await
            .is_err());
        let end = reply.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let jpeg = chunk_jpeg(16, 10368, 25264);
        let head = String::from_utf8_lossy(&reply[..end]).to_lowercase();
        assert!(
            head.contains(&format!("content-length: {}", jpeg.len())),
            "{head}"
        );
        let body = &reply[end + 4..];
        assert!(
            !body.is_empty() && body.len() < 30,
            "{} bytes in 300 ms",
            body.len()
        );
        assert_eq!(body, &jpeg[..body.len()]);

        only(Faults::default());
        server.answer_next(2, 503);
        for _ in 0..2 {
            assert!(get_head(server.addr(), path)
                .await
                .unwrap()
                .0
                .starts_with("http/1.1 503"));
        }
        assert!(get_head(server.addr(), path)
            .await
            .unwrap()
            .0
            .starts_with("http/1.1 200"));

        let stats = server.stats();
        assert_eq!(
            (
                stats.not_found,
                stats.throttled,
                stats.reset,
                stats.filler,
                stats.dripped,
                stats.errors
            ),
            (1, 1, 1, 2, 1, 2)
        );
        server.shutdown().await;
    }

    #[tokio::test]
    async fn latency_is_applied() {
        let latency = Duration::from_millis(150);
        let server = server(ServerConfig {
            latency,
            ..ServerConfig::default()
        })
        .await;
        let start = Instant::now();
        assert_eq!(get(server.addr(), "/tiles/10/1/1.jpg").await.0, 200);
        assert!(start.elapsed() >= latency);

        // Errors wait too; jitter never makes the delay negative.
        server.set_latency(Duration::from_millis(100), Duration::from_millis(20));
        let start = Instant::now();
        assert_eq!(get(server.addr(), "/nothing").await.0, 400);
        assert!(start.elapsed() >= Duration::from_millis(80));
        server.set_latency(Duration::ZERO, Duration::from_millis(5));
        assert_eq!(get(server.addr(), "/tiles/10/1/1.jpg").await.0, 200);
    }

    #[test]
    fn jpeg_cache_keeps_the_newest_entries_within_its_capacity() {
        let tile = |x| ChunkCoord { zoom: 16, x, y: 0 };
        let mut cache = JpegCache {
            capacity: 2,
            ..JpegCache::default()
        };
        for x in 0..3 {
            cache.insert(tile(x), Bytes::from_static(b"jpeg"));
        }
        assert!(!cache.map.contains_key(&tile(0)));
        assert!(cache.map.contains_key(&tile(1)) && cache.map.contains_key(&tile(2)));
        cache.evict_to(1);
        assert_eq!(cache.map.keys().collect::<Vec<_>>(), [&tile(2)]);
    }

    #[tokio::test]
    async fn bandwidth_queues_answers_on_one_link() {
        let server = server(ServerConfig::default()).await;
        let addr = server.addr();
        let (_, body) = get(addr, "/tiles/16/0/0.jpg").await;
        // Four answers of this size at a rate of one per 100 ms.
        server.set_bandwidth(body.len() as u64 * 10);
        let start = Instant::now();
        let requests: Vec<_> = (0..4)
            .map(|_| tokio::spawn(async move { get(addr, "/tiles/16/0/0.jpg").await.0 }))
            .collect();
        for request in requests {
            assert_eq!(request.await.unwrap(), 200);
        }
        assert!(start.elapsed() >= Duration::from_millis(400));
        server.set_bandwidth(0);
        let start = Instant::now();
        assert_eq!(get(addr, "/tiles/16/0/0.jpg").await.0, 200);
        assert!(start.elapsed() < Duration::from_millis(100));
    }

    #[tokio::test]
    async fn counts_concurrent_requests() {
        let latency = Duration::from_millis(300);
        let server = server(ServerConfig {
            latency,
            ..ServerConfig::default()
        })
        .await;
        let addr = server.addr();
        let requests: Vec<_> = (0..8)
            .map(|i| {
                tokio::spawn(async move { get(addr, &format!("/tiles/16/{i}/0.jpg")).await.0 })
            })
            .collect();
        for request in requests {
            assert_eq!(request.await.unwrap(), 200);
        }
        let stats = server.stats();
        assert_eq!((stats.peak_in_flight, stats.in_flight, stats.ok), (8, 0, 8));
    }

    #[test]
    fn background_server_serves_synchronous_callers() {
        use std::io::{Read, Write};
        let server = start_in_background(ServerConfig::default()).unwrap();
        let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
        stream
            .write_all(
                b"GET /tiles/16/10368/25264.jpg HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .unwrap();
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).unwrap();
        let (status, body) = parse_reply(&reply);
        assert_eq!(status, 200);
        assert!(decodes(&body));
        assert_eq!(server.stats().ok, 1);
        let addr = server.addr();
        server.shutdown();
        // The listener closes once the runtime's threads have wound down.
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(addr).is_ok() {
            assert!(Instant::now() < deadline, "still listening");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn garbled_bodies_keep_no_frame_size() {
        let jpeg = chunk_jpeg(12, 1, 1);
        let body = garble(&jpeg);
        assert_eq!(body.len(), jpeg.len() / 3);
        assert!(!decodes(&body));
    }
}
