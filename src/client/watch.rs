//! Following a job to its end from its event stream: a live progress bar on a terminal,
//! plain lines otherwise; Ctrl-C asks whether to cancel the job or only stop watching.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::api::{segment, Api, ClientError};
use super::output::bytes_text;

const FINAL: [&str; 3] = ["SUCCESSFUL", "FAILED", "CANCELED"];

/// How progress is shown: redrawn in place for a person, one line per change for a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    Bar,
    Lines,
}

impl Display {
    /// A bar when stderr is a terminal.
    pub fn for_stderr() -> Display {
        if std::io::stderr().is_terminal() {
            Display::Bar
        } else {
            Display::Lines
        }
    }
}

/// Watches `job_id` until it ends; returns the final job when it succeeded, the job's reason
/// as an error when it failed or was canceled.
pub async fn watch(api: &Api, job_id: &str, display: Display) -> Result<Value, ClientError> {
    let mut shown = Shown::new(display);
    let interactive = display == Display::Bar && std::io::stdin().is_terminal();
    let mut asked_to_cancel = false;
    loop {
        let outcome = {
            let followed = follow(api, job_id, &mut shown);
            tokio::select! {
                outcome = followed => Some(outcome),
                _ = tokio::signal::ctrl_c() => None,
            }
        };
        let Some(outcome) = outcome else {
            shown.interrupt();
            if !interactive || asked_to_cancel || !ask_to_cancel(job_id).await {
                return Err(ClientError::StoppedWatching(job_id.to_owned()));
            }
            asked_to_cancel = true;
            let canceled = api
                .post(&format!("/v2/jobs/{}/cancel", segment(job_id)), None, None)
                .await?;
            let status = canceled["status"].as_str().unwrap_or("CANCELING");
            eprintln!("job {job_id}: {status}");
            continue;
        };
        match outcome? {
            Some(job) => return finish(job, &mut shown),
            // The stream closed before the end (a server restart): read the job and go on.
            None => {
                let job = api.get(&format!("/v2/jobs/{}", segment(job_id))).await?;
                if is_final(&job) {
                    return finish(job, &mut shown);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn is_final(job: &Value) -> bool {
    FINAL.contains(&job["status"].as_str().unwrap_or(""))
}

fn finish(job: Value, shown: &mut Shown) -> Result<Value, ClientError> {
    shown.update(&job);
    shown.end();
    let status = job["status"].as_str().unwrap_or("").to_owned();
    if status == "SUCCESSFUL" {
        return Ok(job);
    }
    Err(ClientError::JobEnded {
        job_id: job["jobId"].as_str().unwrap_or("").to_owned(),
        reason: job["reason"]
            .as_str()
            .or(job["currentStep"].as_str())
            .unwrap_or("no reason given")
            .to_owned(),
        status,
    })
}

/// Reads the event stream, showing each change; the final job, or `None` when the stream
/// closed first.
async fn follow(api: &Api, job_id: &str, shown: &mut Shown) -> Result<Option<Value>, ClientError> {
    let mut response = api.events(job_id).await?;
    let mut events = EventParser::default();
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) | Err(_) => return Ok(None),
        };
        for data in events.push(&chunk) {
            let Ok(envelope) = serde_json::from_str::<Value>(&data) else {
                continue;
            };
            let job = envelope["data"].clone();
            if is_final(&job) {
                return Ok(Some(job));
            }
            shown.update(&job);
        }
    }
}

async fn ask_to_cancel(job_id: &str) -> bool {
    eprint!("Cancel job {job_id}? [y/N] (N stops watching; the job goes on) ");
    let _ = std::io::stderr().flush();
    let answer = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await;
    matches!(answer, Ok(Ok(line)) if line.trim().eq_ignore_ascii_case("y") || line.trim().eq_ignore_ascii_case("yes"))
}

/// Server-Sent Events, split into the `data` of each event as chunks arrive.
#[derive(Default)]
pub struct EventParser {
    buffer: String,
}

impl EventParser {
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.buffer
            .push_str(&String::from_utf8_lossy(chunk).replace("\r\n", "\n"));
        let mut out = Vec::new();
        while let Some(end) = self.buffer.find("\n\n") {
            let block: String = self.buffer.drain(..end + 2).collect();
            let data: Vec<&str> = block
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if !data.is_empty() {
                out.push(data.join("\n"));
            }
        }
        out
    }
}

/// The progress shown so far, and the rate between updates.
struct Shown {
    display: Display,
    last_line: String,
    drawn: bool,
    since: Option<(Instant, i64)>,
    rate: Option<f64>,
}

impl Shown {
    fn new(display: Display) -> Shown {
        Shown {
            display,
            last_line: String::new(),
            drawn: false,
            since: None,
            rate: None,
        }
    }

    fn update(&mut self, job: &Value) {
        let done = job["bytesDone"].as_i64().unwrap_or(0);
        let now = Instant::now();
        match self.since {
            Some((at, bytes)) if now.duration_since(at) >= Duration::from_millis(500) => {
                let per_sec = (done - bytes).max(0) as f64 / now.duration_since(at).as_secs_f64();
                self.rate = Some(per_sec);
                self.since = Some((now, done));
            }
            None => self.since = Some((now, done)),
            _ => {}
        }
        match self.display {
            Display::Bar => {
                let line = bar_line(job, self.rate);
                eprint!("\r\x1b[2K{line}");
                let _ = std::io::stderr().flush();
                self.drawn = true;
            }
            Display::Lines => {
                let line = plain_line(job);
                if line != self.last_line {
                    eprintln!("{line}");
                    self.last_line = line;
                }
            }
        }
    }

    fn interrupt(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }

    fn end(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}

/// `[#########...........]  45%  1.2 GiB of 2.6 GiB  85.0 MiB/s  copying binlogs`
pub fn bar_line(job: &Value, rate: Option<f64>) -> String {
    const WIDTH: usize = 24;
    let percent = job["progress"].as_i64().unwrap_or(0).clamp(0, 100) as usize;
    let filled = percent * WIDTH / 100;
    let mut line = format!(
        "[{}{}] {percent:>3}%",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled)
    );
    let (done, total) = (
        job["bytesDone"].as_i64().unwrap_or(0),
        job["bytesTotal"].as_i64().unwrap_or(0),
    );
    if total > 0 {
        line.push_str(&format!("  {} of {}", bytes_text(done), bytes_text(total)));
    }
    if let Some(rate) = rate.filter(|r| *r > 0.0) {
        line.push_str(&format!("  {}/s", bytes_text(rate as i64)));
    }
    if let Some(step) = job["currentStep"].as_str() {
        line.push_str(&format!("  {step}"));
    }
    line
}

/// `job-... IN_PROGRESS 45% copying binlogs (1.2 GiB of 2.6 GiB)`
pub fn plain_line(job: &Value) -> String {
    let mut line = format!(
        "job {} {} {}%",
        job["jobId"].as_str().unwrap_or(""),
        job["status"].as_str().unwrap_or(""),
        job["progress"].as_i64().unwrap_or(0)
    );
    if let Some(step) = job["currentStep"].as_str() {
        line.push_str(&format!(" {step}"));
    }
    let (done, total) = (
        job["bytesDone"].as_i64().unwrap_or(0),
        job["bytesTotal"].as_i64().unwrap_or(0),
    );
    if total > 0 {
        line.push_str(&format!(" ({} of {})", bytes_text(done), bytes_text(total)));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_are_split_across_chunks() {
        let mut parser = EventParser::default();
        assert!(parser.push(b"event: job\ndata: {\"a\"").is_empty());
        let got = parser.push(b":1}\n\n: keep-alive\n\nevent: job\r\ndata: {}\r\n\r\n");
        assert_eq!(got, vec!["{\"a\":1}".to_owned(), "{}".to_owned()]);
    }

    #[test]
    fn progress_reads_alike_as_a_bar_and_as_a_line() {
        let job = json!({"jobId": "job-1", "status": "IN_PROGRESS", "progress": 50,
            "bytesDone": 1024 * 1024, "bytesTotal": 2 * 1024 * 1024, "currentStep": "copying binlogs"});
        assert_eq!(
            bar_line(&job, Some(1024.0 * 1024.0)),
            "[############............]  50%  1.0 MiB of 2.0 MiB  1.0 MiB/s  copying binlogs"
        );
        assert_eq!(
            plain_line(&job),
            "job job-1 IN_PROGRESS 50% copying binlogs (1.0 MiB of 2.0 MiB)"
        );
        assert!(!plain_line(&job).contains('\x1b'));
    }

    #[test]
    fn a_failed_job_is_an_error_with_its_reason() {
        let mut shown = Shown::new(Display::Lines);
        let job = json!({"jobId": "job-9", "status": "FAILED", "reason": "Milvus went away"});
        let err = finish(job, &mut shown).unwrap_err();
        assert_eq!(err.to_string(), "job job-9 FAILED: Milvus went away");
        assert_eq!(err.exit_code(), 1);
    }
}
