//! What every fake server shares: a loopback HTTP server on its own OS thread
//! and actix system that stops when dropped ([`FakeServer`]), the common
//! injected faults ([`Faults`], [`Next`], [`Outcome`]), bearer tokens and
//! random tokens, and small images to download.
//!
//! Only the scaffolding lives here; each network's routes, answers and
//! errors stay in its own fake.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use rand::distributions::{Alphanumeric, DistString};

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

/// A fake's HTTP server on `127.0.0.1:<free port>`, running on its own OS
/// thread with its own actix system, so it works under any caller runtime
/// and keeps answering while the caller blocks. Stops when dropped.
pub struct FakeServer {
    base_url: String,
    handle: ServerHandle,
}

/// A bound port whose server has not started yet: its base URL is known
/// (for state that needs it) before [`serve`](Self::serve).
pub struct BoundPort {
    listener: TcpListener,
    name: String,
    base_url: String,
}

impl FakeServer {
    /// Bind `127.0.0.1:<free port>` for the fake `name` (e.g. `fake-mastodon`);
    /// [`serve`](BoundPort::serve) then starts the server on it.
    pub fn bind(name: &str) -> BoundPort {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("bind the {name} port: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("the {name} port: {e}"))
            .port();
        BoundPort {
            listener,
            name: format!("{name}-{port}"),
            base_url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }
}

impl BoundPort {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Run the server with `workers` workers (at least one). Handlers get
    /// `state` as `web::Data<S>` and bodies of up to `max_body` bytes;
    /// `routes` registers the fake's routes and default service on each
    /// worker's `App`. Returns once the server is listening.
    pub async fn serve<S, F>(
        self,
        workers: usize,
        state: Arc<S>,
        max_body: usize,
        routes: F,
    ) -> FakeServer
    where
        S: Send + Sync + 'static,
        F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    {
        let BoundPort {
            listener,
            name,
            base_url,
        } = self;
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let data = web::Data::from(state);
                    let server = HttpServer::new(move || {
                        App::new()
                            .app_data(data.clone())
                            .app_data(web::PayloadConfig::new(max_body))
                            .configure(routes.clone())
                    })
                    .workers(workers.max(1))
                    .backlog(4096)
                    .disable_signals()
                    .listen(listener)
                    .expect("listen on the fake server port")
                    .run();
                    let _ = tx.send(server.handle());
                    let _ = server.await;
                })
            })
            .unwrap_or_else(|e| panic!("start the {name} thread: {e}"));
        let handle = rx.await.expect("the fake server started");
        FakeServer { base_url, handle }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        // Sends the stop command now; the server thread ends on its own.
        drop(self.handle.stop(false));
    }
}

// ---------------------------------------------------------------------------------------------
// Injected faults
// ---------------------------------------------------------------------------------------------

/// "The next `n` requests get `value`": a countdown with what to inject.
#[derive(Debug, Clone, Default)]
pub struct Next<T> {
    left: usize,
    value: T,
}

impl<T: Clone> Next<T> {
    /// The next `n` [`take`](Self::take)s return `value`.
    pub fn arm(&mut self, n: usize, value: T) {
        self.left = n;
        self.value = value;
    }

    /// `Some(value)` while armed, counting one down.
    pub fn take(&mut self) -> Option<T> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        Some(self.value.clone())
    }

    /// Whether a [`take`](Self::take) would return something.
    pub fn is_armed(&self) -> bool {
        self.left > 0
    }
}

/// The faults most fakes inject into their writes; `R` is what a network's
/// rate-limit answer needs (a reset time, a retry-after, …).
#[derive(Debug, Clone, Default)]
pub struct Faults<R = ()> {
    /// Fail with this HTTP status, storing nothing.
    pub fail: Next<u16>,
    /// Answer the network's rate-limit error, storing nothing.
    pub rate_limit: Next<R>,
    /// Store, then close the connection without an answer.
    pub drop_after_store: Next<()>,
    /// Store, then wait this long before answering.
    pub stall_after_store: Next<Duration>,
}

impl<R: Clone> Faults<R> {
    /// What to do with the answer to a write that was stored: drop the
    /// connection, stall, or answer (in that order of precedence).
    pub fn after_store(&mut self, response: HttpResponse) -> Outcome {
        if self.drop_after_store.take().is_some() {
            Outcome::Drop
        } else if let Some(stall) = self.stall_after_store.take() {
            Outcome::Stall(response, stall)
        } else {
            Outcome::Answer(response)
        }
    }
}

/// How a fake answers a request.
pub enum Outcome {
    Answer(HttpResponse),
    /// Wait, then answer.
    Stall(HttpResponse, Duration),
    /// Close the connection without an answer.
    Drop,
}

impl Outcome {
    /// The response to give actix; `what` names the fake in a dropped
    /// connection's error.
    pub async fn respond(self, what: &str) -> HttpResponse {
        match self {
            Outcome::Answer(response) => response,
            Outcome::Stall(response, stall) => {
                actix_web::rt::time::sleep(stall).await;
                response
            }
            Outcome::Drop => dropped(what),
        }
    }
}

/// A response whose body fails before its first byte: actix drops the
/// connection without writing the response head.
pub fn dropped(what: &str) -> HttpResponse {
    let message = format!("{what}: connection dropped after storing");
    HttpResponse::Ok().streaming(futures_util::stream::once(async move {
        Err::<web::Bytes, std::io::Error>(std::io::Error::other(message))
    }))
}

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

/// The token of an `Authorization: Bearer <token>` header (scheme in any
/// case), if there is a non-empty one.
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// `len` random ASCII letters and digits.
/// The request's `Content-Type`, lower-cased (empty when absent).
pub fn content_type(req: &HttpRequest) -> String {
    req.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// The PKCE S256 challenge of `verifier`: base64url (no padding) of its SHA-256.
pub fn pkce_s256(verifier: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()))
}

pub fn random_token(len: usize) -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), len)
}

// ---------------------------------------------------------------------------------------------
// Images to download
// ---------------------------------------------------------------------------------------------

/// SOI and a JFIF APP0 segment: enough for type sniffing.
const JFIF_HEAD: [u8; 20] = [
    0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00, 0x01, 0x01, 0x00, 0x00, 0x01,
    0x00, 0x01, 0x00, 0x00,
];

/// A JPEG-looking file: SOI, a JFIF APP0 segment, `filler` zero bytes, EOI.
pub fn jfif(filler: usize) -> Vec<u8> {
    let mut bytes = JFIF_HEAD.to_vec();
    bytes.extend(std::iter::repeat_n(0u8, filler));
    bytes.extend([0xFF, 0xD9]);
    bytes
}

/// A JPEG-looking file of `size` bytes (at least 4): SOI, filler, EOI.
pub fn jpeg_of_size(size: usize) -> Vec<u8> {
    let size = size.max(4);
    let mut bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    bytes[..3].copy_from_slice(&[0xFF, 0xD8, 0xFF]);
    if size >= 6 {
        bytes[3] = 0xE0;
    }
    bytes[size - 2..].copy_from_slice(&[0xFF, 0xD9]);
    bytes
}

/// A 1×1 PNG.
pub const TEST_PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0A, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE,
    0x42, 0x60, 0x82,
];

/// The answer to `GET /fake/image.jpg` (256 bytes) and
/// `GET /fake/image/{size}`: a JPEG of that many bytes.
pub fn sized_jpeg(req: &HttpRequest) -> HttpResponse {
    let size = req
        .match_info()
        .get("size")
        .and_then(|s| s.trim_end_matches(".jpg").parse::<usize>().ok())
        .unwrap_or(256);
    HttpResponse::Ok()
        .content_type("image/jpeg")
        .body(jpeg_of_size(size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countdown_returns_its_value_n_times() {
        let mut next = Next::default();
        assert_eq!(next.take(), None);
        next.arm(2, 503u16);
        assert_eq!(next.take(), Some(503));
        assert!(next.is_armed());
        assert_eq!(next.take(), Some(503));
        assert_eq!(next.take(), None);
    }

    #[test]
    fn images_look_like_their_type() {
        let small = jfif(0);
        assert_eq!(small.len(), 22);
        assert_eq!(&small[..4], &[0xFF, 0xD8, 0xFF, 0xE0]);
        assert_eq!(&small[20..], &[0xFF, 0xD9]);
        let sized = jpeg_of_size(1000);
        assert_eq!(sized.len(), 1000);
        assert_eq!(&sized[998..], &[0xFF, 0xD9]);
        assert_eq!(&TEST_PNG[1..4], b"PNG");
    }
}
