//! A minimal HTTP/1.1 server for `/metrics`, on its own thread and event
//! loop so a scrape never delays a session: it reads the targets' last
//! snapshots (a lock held only to clone their pointers) and encodes them.
//! One request per connection; the request head is bounded in size and in
//! time (a client that sends slowly is dropped), and so are the
//! connections served at once.

use std::{sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};

use super::{
    State,
    metrics::{self, AgentStats, Format},
};

/// The largest request head read.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// How long a client has to send its request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client has to take the response.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the listen queue.
const MAX_CONNECTIONS: usize = 32;

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// `GET /metrics` (or `HEAD`), in this format.
    Metrics { format: Format, head_only: bool },
    /// Another path.
    NotFound,
    /// Another method on `/metrics`.
    MethodNotAllowed,
    /// Not an HTTP request head.
    Bad,
}

/// Parses a request head (up to and without the blank line).
pub fn parse(head: &[u8]) -> Request {
    let Ok(text) = std::str::from_utf8(head) else {
        return Request::Bad;
    };
    let mut lines = text.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (first.next(), first.next(), first.next(), first.next())
    else {
        return Request::Bad;
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() {
        return Request::Bad;
    }
    let path = target.split(['?', '#']).next().unwrap_or_default();
    if path != "/metrics" {
        return Request::NotFound;
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Request::MethodNotAllowed,
    };
    let accept = lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("accept")
            .then(|| value.trim())
    });
    Request::Metrics {
        format: Format::negotiate(accept),
        head_only,
    }
}

/// The response to a request, as bytes.
pub fn respond(request: &Request, state: &State) -> Vec<u8> {
    let (status, content_type, body, head_only) = match request {
        Request::Metrics { format, head_only } => {
            let (targets, up) = state.snapshots();
            let body = metrics::encode(targets, AgentStats::read(up), state.flight(), *format);
            ("200 OK", format.content_type(), body, *head_only)
        }
        Request::NotFound => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found: the metrics are at /metrics\n".to_owned(),
            false,
        ),
        Request::MethodNotAllowed => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "/metrics answers GET (and HEAD)\n".to_owned(),
            false,
        ),
        Request::Bad => (
            "400 Bad Request",
            "text/plain; charset=utf-8",
            "not an HTTP/1.x request\n".to_owned(),
            false,
        ),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// Reads a request head: `Ok(None)` when the client sent too much, closed
/// early, or was too slow.
async fn read_head(
    stream: &mut TcpStream,
    read_timeout: Duration,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let read = async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                buf.truncate(end);
                return Ok(Some(()));
            }
            if buf.len() > MAX_HEAD_BYTES {
                return Ok(None);
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(None);
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    match tokio::time::timeout(read_timeout, read).await {
        Ok(Ok(Some(()))) => Ok(Some(buf)),
        Ok(Ok(None)) | Err(_) => Ok(None),
        Ok(Err(e)) => Err(e),
    }
}

async fn connection(mut stream: TcpStream, state: Arc<State>, read_timeout: Duration) {
    let request = match read_head(&mut stream, read_timeout).await {
        Ok(Some(head)) if head.len() <= MAX_HEAD_BYTES => parse(&head),
        Ok(Some(_)) => Request::Bad,
        Ok(None) | Err(_) => return,
    };
    let response = respond(&request, &state);
    let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
        stream.write_all(&response).await?;
        stream.shutdown().await
    })
    .await;
}

/// Serves `/metrics` on `listener` until the process ends; a client has
/// `read_timeout` ([`READ_TIMEOUT`]) to send its request head.
pub async fn serve(listener: TcpListener, state: Arc<State>, read_timeout: Duration) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, mostly: wait a little rather than spin.
                log::warn!("cannot accept a metrics connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            connection(stream, state, read_timeout).await;
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        let om = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                  version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        let prom = format!("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: {om}");
        assert_eq!(
            parse(prom.as_bytes()),
            Request::Metrics {
                format: Format::OpenMetrics,
                head_only: false
            }
        );
        assert_eq!(
            parse(b"GET /metrics?x=1 HTTP/1.0\r\naccept: */*"),
            Request::Metrics {
                format: Format::Text004,
                head_only: false
            }
        );
        assert_eq!(
            parse(b"HEAD /metrics HTTP/1.1"),
            Request::Metrics {
                format: Format::Text004,
                head_only: true
            }
        );
        assert_eq!(parse(b"GET / HTTP/1.1"), Request::NotFound);
        assert_eq!(parse(b"GET /metricsx HTTP/1.1"), Request::NotFound);
        assert_eq!(parse(b"POST /metrics HTTP/1.1"), Request::MethodNotAllowed);
        assert_eq!(parse(b"GET /metrics"), Request::Bad);
        assert_eq!(parse(b"GET /metrics SMTP/1.0"), Request::Bad);
        assert_eq!(parse(b"\xff\xfe"), Request::Bad);
        assert_eq!(parse(b""), Request::Bad);
    }

    #[test]
    fn responses() {
        let state = State::default();
        let ok = String::from_utf8(respond(
            &Request::Metrics {
                format: Format::Text004,
                head_only: false,
            },
            &state,
        ))
        .unwrap();
        let (head, body) = ok.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(head.contains("Content-Type: text/plain; version=0.0.4"));
        assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
        assert!(body.contains("gotracer_agent_targets 0\n"), "{body}");
        let om = String::from_utf8(respond(
            &Request::Metrics {
                format: Format::OpenMetrics,
                head_only: true,
            },
            &state,
        ))
        .unwrap();
        let (head, body) = om.split_once("\r\n\r\n").unwrap();
        assert!(head.contains("Content-Type: application/openmetrics-text; version=1.0.0"));
        assert!(body.is_empty());
        let nf = String::from_utf8(respond(&Request::NotFound, &state)).unwrap();
        assert!(nf.starts_with("HTTP/1.1 404 Not Found\r\n"));
    }

    /// A real socket: a scrape, a request that never ends its head (cut at
    /// the size bound), and one that stalls (cut at the read timeout,
    /// shortened here).
    #[tokio::test]
    async fn bounded_requests_over_a_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let timeout = Duration::from_millis(300);
        tokio::spawn(serve(listener, Arc::new(State::default()), timeout));
        let get = |req: Vec<u8>| async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            // The server may close before taking it all (too large).
            let _ = s.write_all(&req).await;
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out).await;
            String::from_utf8_lossy(&out).into_owned()
        };
        let ok = get(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n".to_vec()).await;
        assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
        assert!(ok.contains("gotracer_agent_cpu_seconds_total "), "{ok}");
        let mut huge = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        huge.resize(MAX_HEAD_BYTES + 2048, b'a');
        assert_eq!(get(huge).await, "");
        let started = std::time::Instant::now();
        let slow = get(b"GET /metrics HTTP/1.1\r\n".to_vec()).await;
        assert_eq!(slow, "");
        assert!(started.elapsed() >= timeout);
    }
}
