//! The local server's HTTP/1 connection handling, with the limits API Gateway enforces in front
//! of the Lambda functions: a bounded request head (431 above it), a deadline for the head
//! (slow-loris clients and idle keep-alive connections are closed), a deadline for the body
//! (408), and a bounded drain on shutdown.
//!
//! `axum::serve` exposes none of these (and runs hyper without a timer, so hyper's own header
//! timeout is off), hence this accept loop over hyper's HTTP/1 connection builder.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::{Frame, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Connection and request limits of the local server.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Time a client has to send a complete request head (request line and headers), counted
    /// from the connection's start or the end of the previous response. The connection is
    /// closed after it, so slow-loris clients and idle keep-alive connections hold nothing.
    pub header_read_timeout: Duration,
    /// Time a client has to send the whole request body once its head has arrived: 408 after
    /// it (and the connection is closed). Only bodies the handler reads are timed.
    pub body_read_timeout: Duration,
    /// Largest request head in bytes: 431 above it (and the connection is closed).
    pub max_header_bytes: usize,
    /// Most header fields in one request: 431 above it.
    pub max_headers: usize,
    /// Time in-flight requests get to finish after the shutdown signal.
    pub shutdown_grace: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            // API Gateway accepts 10 KB of headers; this leaves room for local tooling.
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Serves `app` on `listener` with `limits` until `shutdown` completes, then stops accepting
/// and gives open connections `limits.shutdown_grace` to finish their requests.
pub async fn serve_on(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let app = app.layer(axum::middleware::from_fn_with_state(
        limits.body_read_timeout,
        body_deadline,
    ));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_headers(limits.max_headers)
        // The read buffer holds at most one head (plus slack); hyper answers 431 when a head
        // fills it without ending. hyper refuses buffers under 8 KiB.
        .max_buf_size((limits.max_header_bytes + 16 * 1024).max(8 * 1024));
    let builder = Arc::new(builder);

    // Every connection task holds a receiver; shutdown is signalled by sending on `signal`,
    // and completion observed when all receivers are gone.
    let (signal, connections) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // The router takes hyper's body type as it is (any `HttpBody`).
        let service = TowerToHyperService::new(app.clone());
        let builder = builder.clone();
        let mut stop = connections.clone();
        tokio::spawn(async move {
            let mut conn = pin!(builder.serve_connection(TokioIo::new(stream), service));
            let mut stopping = false;
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(error) = result {
                            // Timeouts, oversized heads and resets are the client's doing.
                            tracing::debug!(%peer, %error, "connection ended with an error");
                        }
                        break;
                    }
                    changed = stop.changed(), if !stopping => {
                        stopping = true;
                        if changed.is_ok() {
                            conn.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
            drop(stop);
        });
    }
    drop(listener);
    drop(connections);
    let _ = signal.send(true);
    if tokio::time::timeout(limits.shutdown_grace, signal.closed())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_seconds = limits.shutdown_grace.as_secs(),
            "connections still open after the shutdown grace period; closing them"
        );
    }
    Ok(())
}

/// Times the request body: a body still incomplete `timeout` after the head arrived fails the
/// handler's read, and the answer becomes 408 with the connection closed.
async fn body_deadline(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let expired = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| {
        Body::new(TimedBody {
            inner: body,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            expired: expired.clone(),
        })
    });
    let response = next.run(request).await;
    if !expired.load(Ordering::Acquire) {
        return response;
    }
    tracing::info!(
        timeout_seconds = timeout.as_secs_f64(),
        "request body not received in time"
    );
    let mut response = (
        StatusCode::REQUEST_TIMEOUT,
        axum::Json(json!({
            "detail": format!(
                "The request body was not received within {} seconds",
                timeout.as_secs_f64()
            )
        })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A request body that fails once its deadline passes.
struct TimedBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    expired: Arc<AtomicBool>,
}

#[derive(Debug)]
struct BodyReadTimeout;

impl std::fmt::Display for BodyReadTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body not received in time")
    }
}

impl std::error::Error for BodyReadTimeout {}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.expired.store(true, Ordering::Release);
            return Poll::Ready(Some(Err(Box::new(BodyReadTimeout))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
