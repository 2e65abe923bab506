//! The local server's connection limits, checked over raw TCP against `local::serve_on` (the
//! accept loop `orchestration serve` runs) with short deadlines: oversized request heads are
//! refused with 431, slow-loris and idle connections are closed after the header deadline, a
//! body that does not arrive in time is answered 408, and the server keeps serving others
//! throughout. Every wait is bounded.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use local::ServerLimits;
use orchestration_tests::Backend;
use orchestration_tests::app::{SPACE, TestApp};
use shared::http::AppState;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;

const HEADER_TIMEOUT: Duration = Duration::from_millis(800);
const BODY_TIMEOUT: Duration = Duration::from_millis(800);
/// Longest any single wait in these tests may take.
const BOUND: Duration = Duration::from_secs(10);

struct Server {
    addr: SocketAddr,
    app: TestApp,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start() -> Self {
        let app = TestApp::spawn(Backend::Embedded).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = ServerLimits {
            header_read_timeout: HEADER_TIMEOUT,
            body_read_timeout: BODY_TIMEOUT,
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            shutdown_grace: Duration::from_secs(2),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let router = local::app(AppState::new(app.repo.clone()));
        let task = tokio::spawn(local::serve_on(listener, router, limits, async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            app,
            stop: Some(stop),
            task,
        }
    }

    async fn connect(&self) -> TcpStream {
        timeout(BOUND, TcpStream::connect(self.addr))
            .await
            .expect("connect in time")
            .expect("connect")
    }

    /// A complete `GET /health` on a new connection: the server still serves.
    async fn assert_healthy(&self) {
        let mut stream = self.connect().await;
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let (response, _) = read_until_closed(&mut stream).await;
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "health after the abuse: {response}"
        );
    }

    fn comment_request_head(&self, content_length: usize) -> String {
        format!(
            "POST /api/v1.0/spaces/{SPACE}/orchestration/runs/{}/comments HTTP/1.1\r\n\
             Host: t\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
             Content-Length: {content_length}\r\n\r\n",
            uuid::Uuid::new_v4(),
            self.app.keys.viewer,
        )
    }
}

/// Reads until the server closes the connection (EOF or reset) or BOUND passes: what was
/// read, and whether the connection was closed.
async fn read_until_closed(stream: &mut TcpStream) -> (String, bool) {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + BOUND;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&received).into(), true),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&received).into(), false),
        }
    }
}

#[tokio::test]
async fn a_megabyte_of_headers_is_refused_and_the_server_keeps_serving() {
    let server = Server::start().await;
    let mut stream = server.connect().await;
    let mut request = b"GET /health HTTP/1.1\r\nHost: t\r\nX-Padding: ".to_vec();
    request.resize(request.len() + 1024 * 1024, b'a');
    request.extend_from_slice(b"\r\n\r\n");
    let (mut reader, mut writer) = stream.split();
    // The server may close before taking the whole megabyte: a failed write is expected.
    let write = async { writer.write_all(&request).await.is_ok() };
    let read = async {
        let mut received = Vec::new();
        let _ = timeout(BOUND, reader.read_to_end(&mut received)).await;
        String::from_utf8_lossy(&received).into_owned()
    };
    let (_, response) = tokio::join!(write, read);
    // 431, or (when the client's unread megabyte makes the kernel reset the connection
    // first) a closed connection with nothing served.
    assert!(
        response.starts_with("HTTP/1.1 431") || response.is_empty(),
        "1 MB of headers: {response:?}"
    );
    server.assert_healthy().await;
}

#[tokio::test]
async fn heads_over_the_limit_get_431() {
    let server = Server::start().await;
    // Over the byte limit but small enough to be read whole: always a clean 431.
    let mut stream = server.connect().await;
    let padding = "a".repeat(20 * 1024);
    stream
        .write_all(
            format!("GET /health HTTP/1.1\r\nHost: t\r\nX-Padding: {padding}\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let (response, closed) = read_until_closed(&mut stream).await;
    assert!(
        response.starts_with("HTTP/1.1 431"),
        "20 KiB head: {response}"
    );
    assert!(closed, "the connection is closed after a 431");

    // Too many header fields.
    let mut stream = server.connect().await;
    let fields: String = (0..150).map(|i| format!("X-Field-{i}: v\r\n")).collect();
    stream
        .write_all(format!("GET /health HTTP/1.1\r\nHost: t\r\n{fields}\r\n").as_bytes())
        .await
        .unwrap();
    let (response, _) = read_until_closed(&mut stream).await;
    assert!(
        response.starts_with("HTTP/1.1 431"),
        "150 headers: {response}"
    );

    // Just under the limit is served.
    let mut stream = server.connect().await;
    let padding = "a".repeat(12 * 1024);
    stream
        .write_all(
            format!("GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Padding: {padding}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let (response, _) = read_until_closed(&mut stream).await;
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "12 KiB head: {response}"
    );
}

#[tokio::test]
async fn a_slow_loris_is_dropped_after_the_header_timeout() {
    let server = Server::start().await;
    let mut stream = server.connect().await;
    let started = Instant::now();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n")
        .await
        .unwrap();
    // One header line every 100 ms, never the blank line that ends the head.
    let mut closed_after = None;
    for i in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if stream
            .write_all(format!("X-Trickle-{i}: v\r\n").as_bytes())
            .await
            .is_err()
        {
            closed_after = Some(started.elapsed());
            break;
        }
        if i == 3 {
            // Others are served while the slow client hangs on.
            server.assert_healthy().await;
        }
    }
    let closed_after = match closed_after {
        Some(elapsed) => elapsed,
        None => {
            // Writes can keep succeeding into the socket buffer after the server closed: the
            // read side tells.
            let (response, closed) = read_until_closed(&mut stream).await;
            assert!(closed, "slow-loris connection still open: {response}");
            started.elapsed()
        }
    };
    assert!(
        closed_after >= HEADER_TIMEOUT && closed_after < HEADER_TIMEOUT + Duration::from_secs(3),
        "closed after {closed_after:?}, header timeout {HEADER_TIMEOUT:?}"
    );
    server.assert_healthy().await;
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_header_timeout() {
    let server = Server::start().await;
    let mut stream = server.connect().await;
    let started = Instant::now();
    let (response, closed) = read_until_closed(&mut stream).await;
    let elapsed = started.elapsed();
    assert!(
        closed && response.is_empty(),
        "idle connection: {response:?}"
    );
    assert!(
        elapsed >= HEADER_TIMEOUT && elapsed < HEADER_TIMEOUT + Duration::from_secs(3),
        "closed after {elapsed:?}"
    );
}

#[tokio::test]
async fn a_slow_body_gets_408_and_a_prompt_one_is_served() {
    let server = Server::start().await;

    // 100 bytes announced, 11 sent, then one byte every 100 ms.
    let mut stream = server.connect().await;
    let started = Instant::now();
    stream
        .write_all(server.comment_request_head(100).as_bytes())
        .await
        .unwrap();
    stream.write_all(b"{\"content\":").await.unwrap();
    let (mut reader, mut writer) = stream.split();
    let trickle = async {
        for _ in 0..80 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if writer.write_all(b" ").await.is_err() {
                break;
            }
        }
    };
    let read = async {
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        // Until the response's end: the 408 is small, and the connection closes after it.
        while let Ok(Ok(n)) = timeout(BOUND, reader.read(&mut buf)).await {
            if n == 0 {
                break;
            }
            received.extend_from_slice(&buf[..n]);
        }
        (
            String::from_utf8_lossy(&received).into_owned(),
            started.elapsed(),
        )
    };
    let (_, (response, elapsed)) = tokio::join!(trickle, read);
    assert!(
        response.starts_with("HTTP/1.1 408"),
        "slow body: {response}"
    );
    assert!(
        response.to_ascii_lowercase().contains("connection: close"),
        "{response}"
    );
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
    assert!(
        json["detail"]
            .as_str()
            .unwrap()
            .contains("not received within"),
        "{json}"
    );
    assert!(
        elapsed >= BODY_TIMEOUT && elapsed < BODY_TIMEOUT + Duration::from_secs(3),
        "answered after {elapsed:?}"
    );

    // A body sent in two parts, well within the deadline, reaches the handler (the run does
    // not exist: 404 after the body was read and validated).
    let body = br#"{"content": "on time"}"#;
    let mut stream = server.connect().await;
    stream
        .write_all(server.comment_request_head(body.len()).as_bytes())
        .await
        .unwrap();
    stream.write_all(&body[..5]).await.unwrap();
    tokio::time::sleep(BODY_TIMEOUT / 4).await;
    stream.write_all(&body[5..]).await.unwrap();
    let mut buf = [0u8; 4096];
    let n = timeout(BOUND, stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let response = String::from_utf8_lossy(&buf[..n]);
    assert!(
        response.starts_with("HTTP/1.1 404"),
        "prompt body: {response}"
    );
    assert!(response.contains("Run not found"), "{response}");
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_returns() {
    let mut server = Server::start().await;
    // A keep-alive connection that has finished one request and now sits idle.
    let mut stream = server.connect().await;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = timeout(BOUND, stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));

    let started = Instant::now();
    server.stop.take().unwrap().send(()).unwrap();
    let result = timeout(BOUND, &mut server.task)
        .await
        .expect("serve_on returns after the shutdown signal")
        .unwrap();
    result.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "an idle connection held the shutdown for {:?}",
        started.elapsed()
    );
    let (_, closed) = read_until_closed(&mut stream).await;
    assert!(closed, "the idle connection is closed on shutdown");
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "the listener is closed"
    );
}
