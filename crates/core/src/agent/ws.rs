//! The WebSocket connection the cloud voice agents share: the upgrade with the provider's
//! headers, and an upgrade refused (a wrong key is HTTP 401) turned into an error that says so.
//!
//! *Choice: tokio-tungstenite over rustls with the webpki roots.* The providers' public
//! endpoints are `wss://`; rustls needs no system OpenSSL, and bundled roots make the app behave
//! the same on every desk. Plain `ws://` is only accepted to this machine (the settings check it),
//! which is how the tests' loopback servers are reached.

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::AgentError;

/// An open provider connection.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long the TCP, TLS and HTTP upgrade may take together.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What the server answered to the upgrade: its headers (a provider's request id is worth a log
/// line).
#[derive(Debug, Clone, Default)]
pub struct Upgrade {
    /// Response headers, names lowercase.
    pub headers: Vec<(String, String)>,
}

impl Upgrade {
    /// The value of header `name` (any case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Connects to `url` with `headers` added to the upgrade request. `engine` names the provider
/// in errors. Header values are never logged (they carry keys).
pub async fn connect(
    engine: &'static str,
    url: &str,
    headers: &[(&str, String)],
) -> Result<(Socket, Upgrade), AgentError> {
    let fail = |message: String| AgentError::Engine { engine, message };
    let mut request = url.into_client_request().map_err(|e| fail(format!("bad endpoint {url:?}: {e}")))?;
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| fail(format!("bad header name {name:?}")))?;
        // The value may be a key: the error names the header only.
        let value =
            HeaderValue::from_str(value).map_err(|_| fail(format!("header {name} holds invalid characters")))?;
        request.headers_mut().insert(name, value);
    }
    let connecting = tokio_tungstenite::connect_async(request);
    let (socket, response) = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Err(_) => return Err(fail(format!("no answer from {url} within {} s", CONNECT_TIMEOUT.as_secs()))),
        Ok(Err(e)) => return Err(fail(describe(url, e))),
        Ok(Ok(pair)) => pair,
    };
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    Ok((socket, Upgrade { headers }))
}

/// Says in words why the upgrade failed; 401/403 name the credentials.
fn describe(url: &str, e: tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error;
    match e {
        Error::Http(response) => {
            let status = response.status();
            let body = response.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default();
            let body: String = body.chars().take(200).collect();
            match status.as_u16() {
                401 | 403 => format!("{url} refused the credentials (HTTP {status}) {body}").trim_end().to_string(),
                _ => format!("{url} refused the connection (HTTP {status}) {body}").trim_end().to_string(),
            }
        }
        Error::Io(e) => format!("cannot reach {url}: {e}"),
        other => format!("{url}: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_upgrade_names_the_status_and_never_the_key() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf).await;
            let body = "{\"error\":\"invalid key\"}";
            let reply = format!("HTTP/1.1 401 Unauthorized\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            s.write_all(reply.as_bytes()).await.unwrap();
        });
        let url = format!("ws://127.0.0.1:{port}/v1/realtime");
        let err = connect("openai", &url, &[("Authorization", "Bearer sk-secret-123".into())]).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("401") && text.contains("credentials"), "{text}");
        assert!(!text.contains("sk-secret-123"), "{text}");
    }

    #[tokio::test]
    async fn nobody_listening_is_an_error_in_words() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let err = connect("doubao", &format!("ws://127.0.0.1:{port}/"), &[]).await.unwrap_err();
        assert!(err.to_string().starts_with("doubao: cannot reach"), "{err}");
    }
}
