//! X-Plane's Web API as the simulation speaks it, REST and WebSocket on one
//! port: `GET /api`, `GET /api/v2/datarefs?filter[name]=NAME`,
//! `GET /api/v2/datarefs/{id}/value`, and on `ws://…/api/v2`
//! `dataref_subscribe_values` followed by `dataref_update_values` ten times
//! a second (all values first, then only those that changed). The same
//! calls under `/api/v1`; as X-Plane 12.1.1 to 12.1.3, only those (no
//! `/api`, no v2). Dataref ids are offset by the simulator session, so they
//! change on every restart.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server as handshake;
use tokio_tungstenite::tungstenite::Message;

use super::flight::{Flight, KNOWN_DATAREFS};

/// The newest Web API version a simulated X-Plane speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebApiVersion {
    /// X-Plane 12.1.1 to 12.1.3.
    V1,
    /// X-Plane 12.1.4 and later.
    V2,
}

/// What one simulator session serves: its dataref ids and API versions.
#[derive(Debug, Clone, Copy)]
pub struct Session {
    pub id_base: u64,
    pub newest: WebApiVersion,
}

impl Session {
    /// The path under a served version's root (`/api/v1/...`, `/api/v2/...`).
    fn served(self, path: &str) -> Option<&str> {
        path.strip_prefix("/api/v1").or_else(|| match self.newest {
            WebApiVersion::V2 => path.strip_prefix("/api/v2"),
            WebApiVersion::V1 => None,
        })
    }

    fn id_of(self, name: &str) -> Option<u64> {
        KNOWN_DATAREFS
            .iter()
            .position(|n| *n == name)
            .map(|i| self.id_base + i as u64)
    }

    fn name_of(self, id: u64) -> Option<&'static str> {
        let i = usize::try_from(id.checked_sub(self.id_base)?).ok()?;
        KNOWN_DATAREFS.get(i).copied()
    }
}

/// Serves `listener` until aborted; aborting closes every connection too
/// (they live in this task's set), as a quitting X-Plane does.
pub async fn serve(listener: TcpListener, flight: Arc<Mutex<Flight>>, session: Session) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let flight = Arc::clone(&flight);
        connections.spawn(async move {
            if is_websocket(&stream).await {
                websocket(stream, flight, session).await;
            } else {
                let service =
                    service_fn(move |request| rest(Arc::clone(&flight), session, request));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
        });
    }
}

/// Whether the request waiting on `stream` asks for a WebSocket upgrade
/// (looked at without consuming it).
async fn is_websocket(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 2048];
    for _ in 0..50 {
        let Ok(n) = stream.peek(&mut buf).await else {
            return false;
        };
        let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
        if head.contains("\r\n\r\n") || n == buf.len() {
            return head.contains("upgrade: websocket");
        }
        if n == 0 {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    false
}

fn answer(status: StatusCode, body: Value) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// Undoes the percent-encoding clients may apply to `[`, `]` and `/`.
fn unescape(text: &str) -> String {
    text.replace("%5B", "[")
        .replace("%5b", "[")
        .replace("%5D", "]")
        .replace("%5d", "]")
        .replace("%2F", "/")
        .replace("%2f", "/")
}

async fn rest(
    flight: Arc<Mutex<Flight>>,
    session: Session,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path();
    let query = unescape(request.uri().query().unwrap_or(""));
    if path == "/api" && session.newest == WebApiVersion::V2 {
        return answer(StatusCode::OK, json!({ "versions": ["v1", "v2"] }));
    }
    let Some(path) = session.served(path) else {
        return answer(
            StatusCode::NOT_FOUND,
            json!({ "error_code": "route_not_found", "error_message": "no such route" }),
        );
    };
    if path == "/datarefs" {
        let name = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("filter[name]="))
            .unwrap_or("");
        let data: Vec<Value> = session
            .id_of(name)
            .map(|id| json!({ "id": id, "name": name, "value_type": "double" }))
            .into_iter()
            .collect();
        return answer(StatusCode::OK, json!({ "data": data }));
    }
    let value_of = path
        .strip_prefix("/datarefs/")
        .and_then(|rest| rest.strip_suffix("/value"))
        .and_then(|id| id.parse::<u64>().ok())
        .and_then(|id| session.name_of(id));
    match value_of {
        Some(name) => {
            let value = flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .dataref(name);
            answer(StatusCode::OK, json!({ "data": value }))
        }
        None => answer(
            StatusCode::NOT_FOUND,
            json!({ "error_code": "dataref_not_found", "error_message": "no such dataref" }),
        ),
    }
}

/// Accepts a WebSocket handshake only on a served version's root.
struct Route(Session);

impl handshake::Callback for Route {
    fn on_request(
        self,
        request: &handshake::Request,
        response: handshake::Response,
    ) -> Result<handshake::Response, handshake::ErrorResponse> {
        if self.0.served(request.uri().path()) == Some("") {
            Ok(response)
        } else {
            let mut refused = handshake::ErrorResponse::new(None);
            *refused.status_mut() = StatusCode::NOT_FOUND;
            Err(refused)
        }
    }
}

async fn websocket(stream: TcpStream, flight: Arc<Mutex<Flight>>, session: Session) {
    let Ok(mut socket) = tokio_tungstenite::accept_hdr_async(stream, Route(session)).await else {
        return;
    };
    let mut subscribed: Vec<(u64, &'static str)> = Vec::new();
    let mut sent: HashMap<u64, f64> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            message = socket.next() => {
                let Some(Ok(message)) = message else { return };
                let Message::Text(text) = message else { continue };
                let Ok(request) = serde_json::from_str::<Value>(&text) else { continue };
                let req_id = request["req_id"].clone();
                if request["type"] != "dataref_subscribe_values" {
                    continue;
                }
                let asked: Vec<Option<(u64, &'static str)>> = request["params"]["datarefs"]
                    .as_array()
                    .map(|list| {
                        list.iter()
                            .map(|d| d["id"].as_u64().and_then(|id| Some((id, session.name_of(id)?))))
                            .collect()
                    })
                    .unwrap_or_default();
                let success = !asked.is_empty() && asked.iter().all(Option::is_some);
                if success {
                    subscribed.extend(asked.into_iter().flatten());
                }
                let mut result = json!({ "req_id": req_id, "type": "result", "success": success });
                if !success {
                    result["error_code"] = json!("invalid_dataref_id");
                }
                if socket.send(Message::text(result.to_string())).await.is_err() {
                    return;
                }
            }
            _ = tick.tick(), if !subscribed.is_empty() => {
                let flight = *flight.lock().unwrap_or_else(|e| e.into_inner());
                let mut data = serde_json::Map::new();
                for &(id, name) in &subscribed {
                    let value = flight.dataref(name);
                    if sent.insert(id, value) != Some(value) {
                        data.insert(id.to_string(), json!(value));
                    }
                }
                if data.is_empty() {
                    continue;
                }
                let update = json!({ "type": "dataref_update_values", "data": data });
                if socket.send(Message::text(update.to_string())).await.is_err() {
                    return;
                }
            }
        }
    }
}
