//! The HTTP side of the command-line client: one request at a time to a Backstop server's
//! public `/v2` API, the envelope opened, failures sorted into what the user can act on.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Where the client talks to, and as whom. The key is sent, never printed.
#[derive(Clone)]
pub struct Connection {
    pub url: String,
    pub api_key: Option<String>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Why a command could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error envelope.
    #[error("error {code}: {message}")]
    Api { code: i64, message: String },
    /// Nothing (or not Backstop) answered at the URL.
    #[error(
        "cannot reach a Backstop server at {url} ({why}); start it or set --url / BACKSTOP_URL"
    )]
    Unreachable { url: String, why: String },
    /// A job the command waited for ended without succeeding.
    #[error("job {job_id} {status}: {reason}")]
    JobEnded {
        job_id: String,
        status: String,
        reason: String,
    },
    /// The user stopped watching (Ctrl-C); the job goes on.
    #[error(
        "stopped watching job {0}; it goes on (watch it again with `backstop jobs watch {0}`)"
    )]
    StoppedWatching(String),
    /// Flags that parse but cannot make a request.
    #[error("{0}")]
    Usage(String),
}

impl ClientError {
    /// The process exit code: 1 refused or failed, 2 bad usage, 3 no server, 130 interrupted.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Api { .. } | ClientError::JobEnded { .. } => 1,
            ClientError::Usage(_) => 2,
            ClientError::Unreachable { .. } => 3,
            ClientError::StoppedWatching(_) => 130,
        }
    }
}

/// A client for one server.
pub struct Api {
    connection: Connection,
    http: reqwest::Client,
}

/// Transport failures are tried again this many times in all (requests that change something
/// only with an idempotency key, so a retry cannot do the work twice).
const ATTEMPTS: u32 = 3;

impl Api {
    pub fn new(connection: Connection) -> Result<Api, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("backstop-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Usage(format!("cannot set up HTTP: {e}")))?;
        let url = connection.url.trim_end_matches('/').to_owned();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ClientError::Usage(format!(
                "--url {url} is not an http:// or https:// URL (e.g. http://127.0.0.1:8080)"
            )));
        }
        Ok(Api {
            connection: Connection { url, ..connection },
            http,
        })
    }

    pub fn url(&self) -> &str {
        &self.connection.url
    }

    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.send(Method::GET, path, None, None).await
    }

    /// A POST; with `idempotency_key` the server answers a repeat with the first answer.
    pub async fn post(
        &self,
        path: &str,
        body: Option<Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Value, ClientError> {
        self.send(Method::POST, path, body, idempotency_key).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, ClientError> {
        self.send(Method::DELETE, path, None, None).await
    }

    /// Every item of a list endpoint (`items` names the array), page after page.
    pub async fn get_all(&self, path: &str, items: &str) -> Result<Vec<Value>, ClientError> {
        let joiner = if path.contains('?') { '&' } else { '?' };
        let mut all = Vec::new();
        for page in 1.. {
            let listed = self
                .get(&format!("{path}{joiner}pageSize=100&currentPage={page}"))
                .await?;
            let batch = listed[items].as_array().cloned().unwrap_or_default();
            let count = listed["count"].as_u64().unwrap_or(0);
            let empty = batch.is_empty();
            all.extend(batch);
            if empty || all.len() as u64 >= count {
                break;
            }
        }
        Ok(all)
    }

    /// Opens a job's event stream (Server-Sent Events); the caller reads its chunks.
    pub async fn events(&self, job_id: &str) -> Result<reqwest::Response, ClientError> {
        let url = format!("{}/v2/jobs/{}/events", self.url(), segment(job_id));
        let response = self
            .authorized(self.http.get(url))
            .header("Accept", "text/event-stream")
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        Err(api_error(status, &text))
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.connection.api_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.url());
        let retry = method == Method::GET || idempotency_key.is_some();
        let mut attempt = 1;
        loop {
            let mut request = self
                .authorized(self.http.request(method.clone(), &url))
                .timeout(Duration::from_secs(120));
            if let Some(key) = idempotency_key {
                request = request.header("Idempotency-Key", key);
            }
            if let Some(body) = &body {
                request = request.json(body);
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) if retry && attempt < ATTEMPTS && !e.is_builder() => {
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(self.unreachable(&e)),
            };
            let status = response.status();
            let text = response.text().await.map_err(|e| self.unreachable(&e))?;
            if status.is_success() {
                let envelope: Value =
                    serde_json::from_str(&text).map_err(|_| ClientError::Unreachable {
                        url: self.url().to_owned(),
                        why: format!("{path} answered {status} without a JSON envelope"),
                    })?;
                return Ok(envelope.get("data").cloned().unwrap_or(Value::Null));
            }
            return Err(api_error(status, &text));
        }
    }

    fn unreachable(&self, e: &reqwest::Error) -> ClientError {
        let why = if e.is_connect() {
            "connection refused or no route".to_owned()
        } else if e.is_timeout() {
            "no answer in time".to_owned()
        } else {
            // reqwest's own words, without the URL (said once, by the message).
            let mut text = e.to_string();
            if let Some(url) = e.url() {
                text = text.replace(&format!(" for url ({url})"), "");
            }
            text
        };
        ClientError::Unreachable {
            url: self.url().to_owned(),
            why,
        }
    }
}

/// An error answer as the user should read it: the API's code and message when it sent them.
fn api_error(status: StatusCode, text: &str) -> ClientError {
    match serde_json::from_str::<Value>(text) {
        Ok(body) if body["code"].is_i64() => ClientError::Api {
            code: body["code"].as_i64().unwrap_or_default(),
            message: body["message"].as_str().unwrap_or_default().to_owned(),
        },
        _ => ClientError::Api {
            code: i64::from(status.as_u16()),
            message: format!("HTTP {status} without an API error body"),
        },
    }
}

/// A value placed in a URL path, escaped.
pub fn segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A query string from the pairs that have a value.
pub fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", segment(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_and_queries_are_escaped() {
        assert_eq!(segment("job-1"), "job-1");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
        assert_eq!(
            query(&[
                ("clusterId", Some("in01-x")),
                ("type", None),
                ("s", Some("a&b"))
            ]),
            "?clusterId=in01-x&s=a%26b"
        );
        assert_eq!(query(&[("type", None)]), "");
    }

    #[test]
    fn error_bodies_keep_the_api_code_and_message() {
        let e = api_error(
            StatusCode::NOT_FOUND,
            r#"{"code":90404,"message":"no such job"}"#,
        );
        assert_eq!(e.to_string(), "error 90404: no such job");
        assert_eq!(e.exit_code(), 1);
        let e = api_error(StatusCode::BAD_GATEWAY, "<html>");
        assert_eq!(
            e.to_string(),
            "error 502: HTTP 502 Bad Gateway without an API error body"
        );
    }
}
