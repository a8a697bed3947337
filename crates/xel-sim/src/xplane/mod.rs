//! A simulated X-Plane: flies a track and speaks X-Plane's telemetry
//! protocols, and loads scenery through a mount by X-Plane's rule.
//!
//! - [`flight`]: the aircraft (track, speed, time compression) and its datarefs.
//! - [`udp`]: the legacy UDP interface (`RREF`).
//! - [`webapi`]: the Web API (REST and WebSocket on one port).
//! - [`loader`]: DSF and texture reads through a mount as X-Plane does them.
//! - [`trip`]: a flight's loads one after the other, start-up load first.
//!
//! [`SimXPlane`] can go away and come back on the same ports, with new
//! dataref ids, as X-Plane does when it is restarted.

pub mod flight;
pub mod loader;
pub mod trip;
pub mod udp;
pub mod webapi;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpSocket, UdpSocket};
use tokio::task::JoinHandle;

pub use flight::{Flight, FlightPlan};
pub use loader::{LoadReport, SceneryLoader};
pub use trip::{DueLoad, Trip};
pub use webapi::WebApiVersion;

/// The running simulator's telemetry side.
pub struct SimXPlane {
    flight: Arc<Mutex<Flight>>,
    udp_addr: SocketAddr,
    web_addr: SocketAddr,
    web_api: WebApiVersion,
    udp_subscribed: Arc<AtomicUsize>,
    sessions: u64,
    servers: Vec<JoinHandle<()>>,
}

impl SimXPlane {
    /// Starts flying `plan`, serving UDP and the Web API on free ports of
    /// 127.0.0.1.
    pub async fn start(plan: FlightPlan) -> io::Result<SimXPlane> {
        Self::start_with_web_api(plan, WebApiVersion::V2).await
    }

    /// As [`start`](Self::start), as an X-Plane whose newest Web API is `web_api`.
    pub async fn start_with_web_api(
        plan: FlightPlan,
        web_api: WebApiVersion,
    ) -> io::Result<SimXPlane> {
        let any: SocketAddr = ([127, 0, 0, 1], 0).into();
        Self::launch(plan, any, any, web_api).await
    }

    /// Starts flying `plan` with the servers on the given addresses.
    pub async fn start_at(
        plan: FlightPlan,
        udp_addr: SocketAddr,
        web_addr: SocketAddr,
    ) -> io::Result<SimXPlane> {
        Self::launch(plan, udp_addr, web_addr, WebApiVersion::V2).await
    }

    async fn launch(
        plan: FlightPlan,
        udp_addr: SocketAddr,
        web_addr: SocketAddr,
        web_api: WebApiVersion,
    ) -> io::Result<SimXPlane> {
        let mut sim = SimXPlane {
            flight: Arc::new(Mutex::new(Flight::new(plan))),
            udp_addr,
            web_addr,
            web_api,
            udp_subscribed: Arc::default(),
            sessions: 0,
            servers: Vec::new(),
        };
        sim.come_back().await?;
        Ok(sim)
    }

    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    pub fn web_addr(&self) -> SocketAddr {
        self.web_addr
    }

    /// Dataref subscriptions over UDP that this run of X-Plane serves.
    pub fn udp_subscriptions(&self) -> usize {
        self.udp_subscribed.load(Ordering::Relaxed)
    }

    /// Where the aircraft is now.
    pub fn position(&self) -> (f64, f64) {
        self.flight().position()
    }

    pub fn flight(&self) -> Flight {
        *self.flight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a new flight (as after a reposition in X-Plane).
    pub fn fly(&self, plan: FlightPlan) {
        *self.flight.lock().unwrap_or_else(|e| e.into_inner()) = Flight::new(plan);
    }

    /// X-Plane quits: both servers close, subscriptions are gone.
    pub fn go_away(&mut self) {
        for server in self.servers.drain(..) {
            server.abort();
        }
    }

    /// X-Plane starts again on the same ports, with new dataref ids.
    pub async fn come_back(&mut self) -> io::Result<()> {
        self.go_away();
        self.sessions += 1;
        let udp = UdpSocket::bind(self.udp_addr).await?;
        self.udp_addr = udp.local_addr()?;
        let tcp = TcpSocket::new_v4()?;
        // The old listener's connections may linger in TIME_WAIT.
        tcp.set_reuseaddr(true)?;
        tcp.bind(self.web_addr)?;
        let listener: TcpListener = tcp.listen(64)?;
        self.web_addr = listener.local_addr()?;
        let session = webapi::Session {
            id_base: 1_000 * self.sessions + 17,
            newest: self.web_api,
        };
        // A new run of X-Plane knows no subscriptions.
        self.udp_subscribed = Arc::default();
        self.servers.push(tokio::spawn(udp::serve(
            udp,
            Arc::clone(&self.flight),
            Arc::clone(&self.udp_subscribed),
        )));
        self.servers.push(tokio::spawn(webapi::serve(
            listener,
            Arc::clone(&self.flight),
            session,
        )));
        Ok(())
    }
}

impl Drop for SimXPlane {
    fn drop(&mut self) {
        self.go_away();
    }
}
