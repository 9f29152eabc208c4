//! A small HTTP/1.1 client for the plain-HTTP services bboard talks to (witnesses, the
//! nodes' JSON mirror), on hyper-util.

use std::time::Duration;

use bytes::Bytes;
use http::{header, Method};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// How long one request may take, answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTP answer: status, content type, body.
#[derive(Clone, Debug)]
pub struct HttpAnswer {
    /// Status code.
    pub status: u16,
    /// `Content-Type`, empty if none.
    pub content_type: String,
    /// Body as text (lossy UTF-8).
    pub body: String,
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL (or method) does not make a request.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// No complete answer in time.
    #[error("{url}: no answer within {} s", REQUEST_TIMEOUT.as_secs())]
    Timeout {
        /// The URL.
        url: String,
    },
    /// Connection or protocol failure.
    #[error("{method} {url}: {reason}")]
    Transport {
        /// The method.
        method: Method,
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

/// Sends one request with a text body (empty for GET) and reads the whole answer.
///
/// # Errors
///
/// [`HttpError`]; an answer with any status is `Ok`.
pub async fn request(method: Method, url: &str, body: String) -> Result<HttpAnswer, HttpError> {
    let request = http::Request::builder()
        .method(method.clone())
        .uri(url)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| HttpError::InvalidUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    let transport = |reason: String| HttpError::Transport {
        method: method.clone(),
        url: url.to_string(),
        reason,
    };
    let exchange = async {
        let client = Client::builder(TokioExecutor::new()).build_http();
        let response = client
            .request(request)
            .await
            .map_err(|e| transport(e.to_string()))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| transport(format!("reading the answer: {e}")))?
            .to_bytes();
        Ok(HttpAnswer {
            status,
            content_type,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| HttpError::Timeout {
            url: url.to_string(),
        })?
}
