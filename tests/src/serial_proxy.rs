//! A loopback proxy that passes requests to moto one at a time.
//!
//! DynamoDB makes every API call atomic: a `TransactWriteItems` or a conditional write is
//! checked and applied as one step. moto does not under concurrent calls: its server is
//! threaded, checks a transaction's conditions and applies it without a lock, and on a failed
//! condition restores a copy of the whole table taken before, undoing whatever other calls
//! wrote meanwhile. Concurrency tests on the DynamoDB backend therefore reach moto through
//! this proxy, which restores DynamoDB's per-call atomicity (and nothing more: the
//! application's calls still interleave freely between one another).
//!
//! moto answers each request with `Connection: close`, so the proxy handles one request per
//! connection: it reads the whole request, then, holding a global lock, sends it to moto and
//! reads the answer to its end.

use std::net::SocketAddr;
use std::sync::OnceLock;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

/// The largest request head accepted (the SDK's are about 1 KB).
const MAX_HEAD: usize = 64 * 1024;

/// Points this test process's DynamoDB clients at a serialising proxy in front of the moto
/// server that `AWS_ENDPOINT_URL_DYNAMODB` names. Idempotent; call it first in every test of
/// a test binary that uses it, before anything reads the environment.
pub fn serialize_dynamodb() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL_DYNAMODB") else {
            // Without moto the DynamoDB tests fail with their own message (see `dynamo_table`).
            return;
        };
        let upstream: SocketAddr = endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .replace("localhost", "127.0.0.1")
            .parse()
            .unwrap_or_else(|e| panic!("AWS_ENDPOINT_URL_DYNAMODB {endpoint:?}: {e}"));
        let (ready, address) = std::sync::mpsc::channel();
        // The proxy outlives each test's runtime: it gets a thread and a runtime of its own.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("proxy runtime");
            runtime.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
                ready.send(listener.local_addr().unwrap()).unwrap();
                let lock = std::sync::Arc::new(Mutex::new(()));
                while let Ok((client, _)) = listener.accept().await {
                    let lock = lock.clone();
                    tokio::spawn(async move {
                        let _ = relay(client, upstream, &lock).await;
                    });
                }
            });
        });
        let proxy = address.recv().expect("proxy started");
        // SAFETY: called once, before this process's tests read the environment (each test
        // calls this first, and `OnceLock` makes the others wait until it is done).
        unsafe { std::env::set_var("AWS_ENDPOINT_URL_DYNAMODB", format!("http://{proxy}")) };
    });
}

async fn relay(
    mut client: TcpStream,
    upstream: SocketAddr,
    lock: &Mutex<()>,
) -> std::io::Result<()> {
    let request = read_request(&mut client).await?;
    let response = {
        let _one_at_a_time = lock.lock().await;
        let mut server = TcpStream::connect(upstream).await?;
        server.write_all(&request).await?;
        let mut response = Vec::new();
        server.read_to_end(&mut response).await?;
        response
    };
    client.write_all(&response).await?;
    client.shutdown().await
}

/// The whole request: its head and a `Content-Length` body.
async fn read_request(client: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if buffer.len() > MAX_HEAD {
            return Err(std::io::Error::other("request head too large"));
        }
        let read = client.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .split("\r\n")
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        let read = client.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    Ok(buffer)
}
