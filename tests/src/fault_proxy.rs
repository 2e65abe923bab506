//! A byte-level TCP proxy in front of the fake Airflow that can break connections the way a
//! real network does, which an HTTP mock cannot: it resets the connection (TCP RST, nothing
//! answered), cuts a response off after its headers and part of its body (fewer bytes than
//! its `Content-Length`), holds the connection open without answering, or drips the answer
//! one byte a second.
//!
//! The fake marks a response to break with the [`FAULT_HEADER`] header; the proxy forwards
//! requests untouched, parses each response head coming back (HTTP/1.1, one response at a time
//! per connection, as the client sends them), and acts on the marker instead of forwarding.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Response header by which the fake asks the proxy to break the response.
pub const FAULT_HEADER: &str = "x-fake-fault";
/// [`FAULT_HEADER`] value: reset the connection before any byte of the response.
pub const RESET: &str = "reset";
/// [`FAULT_HEADER`] value: send the head and half the body, then close the connection.
pub const TRUNCATE: &str = "truncate";
/// [`FAULT_HEADER`] value: accept, read the request, never answer (the connection stays open).
pub const HANG: &str = "hang";
/// [`FAULT_HEADER`] value: the answer, one byte a second.
pub const DRIP: &str = "drip";
/// How long a hanging or dripping connection is held at most (bounds every test).
const HOLD_AT_MOST: std::time::Duration = std::time::Duration::from_secs(120);

/// The largest response head the proxy accepts (the fake's are a few hundred bytes).
const MAX_HEAD: usize = 64 * 1024;

pub struct FaultProxy {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Listens on a loopback port and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fault proxy on loopback");
        let addr = listener.local_addr().expect("proxy address");
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(async move {
                    // A connection the client or the fake dropped simply ends.
                    let _ = relay(client, upstream).await;
                });
            }
        });
        Self { addr, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// A parsed response head: its raw bytes, the marker, and how its body is framed.
struct Head {
    bytes: Vec<u8>,
    fault: Option<String>,
    /// `None`: not length-delimited (chunked or until close): relayed raw to the end.
    content_length: Option<usize>,
}

async fn relay(client: TcpStream, upstream: SocketAddr) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    let server = TcpStream::connect(upstream).await?;
    server.set_nodelay(true)?;
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // Requests go through untouched.
    let requests = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
        // Held until the relay ends: dropping it is what closes the client's socket.
        drop(client_read);
    });
    let mut buffer: Vec<u8> = Vec::with_capacity(8192);
    loop {
        let Some(head) = read_head(&mut server_read, &mut buffer).await? else {
            break;
        };
        match head.fault.as_deref() {
            Some(RESET) => {
                // SO_LINGER 0 makes the close an RST instead of a FIN; `forget` keeps the
                // write half from sending a FIN first, so the socket closes (with the RST) when
                // the request relay drops the read half.
                client_write.as_ref().set_zero_linger()?;
                client_write.forget();
                requests.abort();
                return Ok(());
            }
            Some(HANG) => {
                // Nothing is answered; the client gives up (or the hold ends).
                tokio::time::sleep(HOLD_AT_MOST).await;
                requests.abort();
                return Ok(());
            }
            Some(DRIP) => {
                let body = read_body(&mut server_read, &mut buffer, head.content_length).await?;
                let answer = [strip_marker(&head.bytes), body].concat();
                let drip = async {
                    for byte in answer {
                        client_write.write_all(&[byte]).await?;
                        client_write.flush().await?;
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                    Ok::<_, std::io::Error>(())
                };
                let _ = tokio::time::timeout(HOLD_AT_MOST, drip).await;
                requests.abort();
                return Ok(());
            }
            Some(TRUNCATE) => {
                let body = read_body(&mut server_read, &mut buffer, head.content_length).await?;
                client_write.write_all(&strip_marker(&head.bytes)).await?;
                client_write.write_all(&body[..body.len() / 2]).await?;
                client_write.flush().await?;
                // Closing now leaves the client short of the announced length.
                requests.abort();
                drop(client_write);
                return Ok(());
            }
            _ => {
                client_write.write_all(&head.bytes).await?;
                match head.content_length {
                    Some(_) => {
                        let body =
                            read_body(&mut server_read, &mut buffer, head.content_length).await?;
                        client_write.write_all(&body).await?;
                    }
                    None => {
                        client_write.write_all(&buffer).await?;
                        buffer.clear();
                        tokio::io::copy(&mut server_read, &mut client_write).await?;
                        break;
                    }
                }
            }
        }
    }
    let _ = client_write.shutdown().await;
    requests.abort();
    Ok(())
}

/// Reads the next response head (through the blank line); `None` at a clean end of stream.
async fn read_head(
    server: &mut tokio::net::tcp::OwnedReadHalf,
    buffer: &mut Vec<u8>,
) -> std::io::Result<Option<Head>> {
    loop {
        if let Some(end) = find(buffer, b"\r\n\r\n") {
            let bytes: Vec<u8> = buffer.drain(..end + 4).collect();
            let text = String::from_utf8_lossy(&bytes).to_string();
            let mut fault = None;
            let mut content_length = None;
            let mut chunked = false;
            for line in text.split("\r\n").skip(1) {
                let Some((name, value)) = line.split_once(':') else {
                    continue;
                };
                let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
                match name.as_str() {
                    FAULT_HEADER => fault = Some(value.to_string()),
                    "content-length" => content_length = value.parse().ok(),
                    "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
                    _ => {}
                }
            }
            let status: u16 = text
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(200);
            // Responses that cannot have a body are length-delimited with length zero.
            let content_length = if chunked {
                None
            } else if matches!(status, 100..=199 | 204 | 304) {
                Some(0)
            } else {
                Some(content_length.unwrap_or(0))
            };
            return Ok(Some(Head {
                bytes,
                fault,
                content_length,
            }));
        }
        if buffer.len() > MAX_HEAD {
            return Err(std::io::Error::other("response head too large"));
        }
        let mut chunk = [0u8; 8192];
        let read = server.read(&mut chunk).await?;
        if read == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

/// Reads exactly `length` body bytes (what is buffered first).
async fn read_body(
    server: &mut tokio::net::tcp::OwnedReadHalf,
    buffer: &mut Vec<u8>,
    length: Option<usize>,
) -> std::io::Result<Vec<u8>> {
    let length = length.unwrap_or(buffer.len());
    while buffer.len() < length {
        let mut chunk = [0u8; 8192];
        let read = server.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    Ok(buffer.drain(..length).collect())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The head without the marker line (the client sees an ordinary response).
fn strip_marker(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    text.split_inclusive("\r\n")
        .filter(|line| {
            !line
                .to_ascii_lowercase()
                .starts_with(&format!("{FAULT_HEADER}:"))
        })
        .collect::<String>()
        .into_bytes()
}
