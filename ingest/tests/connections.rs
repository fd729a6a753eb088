//! A request answered before its body was read (401, 413, 415) leaves the HTTP/1.1 connection
//! usable, or says `Connection: close`: a pooled client never sends into a closing socket.
//! Driven over a raw TCP stream, so the test decides exactly when each byte arrives.

use std::sync::Arc;
use std::time::Duration;

use ingest::connection::DRAIN_LIMIT_BYTES;
use ingest::{App, router};
use shared::auth::{AuthConfig, TokenAlgorithm, TokenVerifier, VerificationKey};
use shared::limits::MAX_BODY_BYTES;
use shared::memory::{MemoryQueue, MemoryStore, QueueSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SECRET: &[u8] = b"connections-secret-0123456789abcdef";

fn token() -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims =
        serde_json::json!({ "sub": "alice", "iss": "iss", "aud": "aud", "exp": now + 3600 });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

async fn serve() -> std::net::SocketAddr {
    let config = AuthConfig {
        algorithm: TokenAlgorithm::Hs256,
        key: VerificationKey::Secret(SECRET.to_vec()),
        issuer: "iss".into(),
        audience: "aud".into(),
        leeway_seconds: 0,
        key_id: None,
    };
    let app = router(Arc::new(App::new(
        TokenVerifier::new(&config).unwrap(),
        Arc::new(MemoryQueue::new("connections", QueueSettings::default())),
        Arc::new(MemoryStore::new()),
    )));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Reads one response (head and a Content-Length body) off the stream.
async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buffer.len() >= end + 4 + length {
                let status = head[9..12].parse().unwrap();
                return (status, head);
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("the server answers within 10 s")
            .expect("the connection is readable");
        assert!(
            n > 0,
            "the server closed the connection; read so far: {buffer:?}"
        );
        buffer.extend_from_slice(&chunk[..n]);
    }
}

fn post_head(path: &str, content_type: &str, length: usize, token: Option<&str>) -> String {
    let authorization = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    format!(
        "POST {path} HTTP/1.1\r\nhost: ingest\r\n{authorization}content-type: {content_type}\r\ncontent-length: {length}\r\n\r\n"
    )
}

const OPENAPI: &[u8] = b"GET /openapi.json HTTP/1.1\r\nhost: ingest\r\n\r\n";

#[tokio::test]
async fn an_early_answer_to_a_body_still_arriving_keeps_the_connection_usable() {
    let addr = serve().await;
    let token = token();
    for (what, content_type, length, token, expected) in [
        ("no token", "application/json", 32 * 1024, None, 401),
        (
            "over the size limit",
            "application/json",
            MAX_BODY_BYTES + 1,
            Some(&token),
            413,
        ),
        (
            "wrong content type",
            "text/plain",
            32 * 1024,
            Some(&token),
            415,
        ),
    ] {
        // GIVEN a request whose body is only half sent when the server can already answer
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head = post_head(
            "/v1/scores",
            content_type,
            length,
            token.map(String::as_str),
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&vec![b' '; length / 2]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        stream
            .write_all(&vec![b' '; length - length / 2])
            .await
            .unwrap();

        // WHEN its answer is read and a second request follows on the same connection
        let (status, head) = read_response(&mut stream).await;
        assert_eq!(status, expected, "{what}: {head}");
        assert!(!head.contains("connection: close"), "{what}: {head}");
        stream.write_all(OPENAPI).await.unwrap();

        // THEN the second request is answered too
        let (status, _) = read_response(&mut stream).await;
        assert_eq!(status, 200, "{what}: the connection was reused");
    }
}

#[tokio::test]
async fn a_body_too_large_to_drain_gets_connection_close() {
    let addr = serve().await;
    let length = DRAIN_LIMIT_BYTES + 1;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(post_head("/v1/scores", "application/json", length, Some(&token())).as_bytes())
        .await
        .unwrap();
    let writer = {
        let (mut read_half, mut write_half) = stream.into_split();
        let writing = tokio::spawn(async move {
            // The server may stop reading and close: a failed write is expected then.
            let _ = write_half.write_all(&vec![b' '; length]).await;
            write_half
        });
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match read_half.read(&mut byte).await.unwrap() {
                0 => break,
                _ => head.push(byte[0]),
            }
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 413"), "{head}");
        assert!(head.contains("connection: close"), "{head}");
        writing
    };
    let _ = writer.await;
}
