//! A small HTTP/1.1 client for the plain-HTTP services bboard talks to (witnesses, the
//! nodes' JSON mirror), on hyper-util.

use std::time::Duration;

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::http::{header, Method};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// An HTTP answer: status, content type, body.
pub struct HttpAnswer {
    /// Status code.
    pub status: u16,
    /// `Content-Type`, empty if none.
    pub content_type: String,
    /// Body as text (lossy UTF-8).
    pub body: String,
}

/// Sends one request with a text body (empty for GET) and reads the whole answer,
/// within 30 seconds.
pub async fn request(method: Method, url: &str, body: String) -> Result<HttpAnswer> {
    let request = axum::http::Request::builder()
        .method(method.clone())
        .uri(url)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Full::new(Bytes::from(body)))
        .with_context(|| format!("invalid URL {url:?}"))?;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let response = tokio::time::timeout(Duration::from_secs(30), client.request(request))
        .await
        .with_context(|| format!("{url}: no answer within 30 s"))?
        .with_context(|| format!("{method} {url}"))?;
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
        .with_context(|| format!("reading the answer of {url}"))?
        .to_bytes();
    Ok(HttpAnswer {
        status,
        content_type,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
