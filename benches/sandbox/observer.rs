//! A watch on every TaskReset, over raw HTTP: when each object was first seen `Succeeded`
//! for its current generation, and how many bytes such a watch costs (the simulator's request
//! log cannot count a stream's bytes).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::task::JoinHandle;

const RESOURCE: &str = "/apis/fdi.roma.io/v1alpha1/taskresets";

#[derive(Default)]
struct Seen {
    /// `namespace/name` -> when the watch first delivered it `Succeeded` (current generation).
    succeeded: HashMap<String, Instant>,
    /// `namespace/name` -> a terminal phase other than `Succeeded`.
    other_terminal: BTreeMap<String, String>,
    /// Bytes of watch bodies received.
    bytes: u64,
    /// Watch events received (bookmarks excluded).
    events: u64,
    /// Watches started after the first (a stream ended).
    rewatches: u32,
    /// Lists after a 410 Expired (objects seen then get the list's time: less precise).
    relists: u32,
    resource_version: String,
}

/// Counts of what the observer saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    /// Bytes of watch bodies.
    pub bytes: u64,
    /// Events.
    pub events: u64,
    /// Watches re-opened.
    pub rewatches: u32,
    /// Relists after 410.
    pub relists: u32,
}

/// The running observer; stops when dropped.
pub struct Observer {
    seen: Arc<Mutex<Seen>>,
    task: JoinHandle<()>,
}

fn lock(seen: &Mutex<Seen>) -> MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(PoisonError::into_inner)
}

fn key(obj: &Value) -> String {
    let meta = &obj["metadata"];
    format!(
        "{}/{}",
        meta["namespace"].as_str().unwrap_or(""),
        meta["name"].as_str().unwrap_or("")
    )
}

/// Record `obj` as of `at`.
fn note(seen: &mut Seen, obj: &Value, at: Instant) {
    let status = &obj["status"];
    if status["observedGeneration"] != obj["metadata"]["generation"] {
        return;
    }
    match status["phase"].as_str() {
        Some("Succeeded") => {
            seen.succeeded.entry(key(obj)).or_insert(at);
        }
        Some(phase @ ("Failed" | "Unknown")) => {
            seen.other_terminal.insert(key(obj), phase.to_owned());
        }
        _ => {}
    }
}

impl Observer {
    /// List every TaskReset, then watch from the list's resourceVersion.
    pub async fn start(http: reqwest::Client, base: String) -> Result<Self, String> {
        let seen = Arc::new(Mutex::new(Seen::default()));
        relist(&http, &base, &seen).await?;
        let task = tokio::spawn(follow(http, base, Arc::clone(&seen)));
        Ok(Self { seen, task })
    }

    /// How many objects have been seen `Succeeded`.
    pub fn succeeded(&self) -> usize {
        lock(&self.seen).succeeded.len()
    }

    /// When `namespace/name` was first seen `Succeeded`.
    pub fn succeeded_at(&self, key: &str) -> Option<Instant> {
        lock(&self.seen).succeeded.get(key).copied()
    }

    /// The objects that ended in another terminal phase, and that phase.
    pub fn other_terminal(&self) -> BTreeMap<String, String> {
        lock(&self.seen).other_terminal.clone()
    }

    /// Counts so far.
    pub fn totals(&self) -> Totals {
        let seen = lock(&self.seen);
        Totals {
            bytes: seen.bytes,
            events: seen.events,
            rewatches: seen.rewatches,
            relists: seen.relists,
        }
    }

    /// Wait until `count` objects are `Succeeded`; `Err(seen)` after `within`.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Result<Instant, usize> {
        let deadline = Instant::now() + within;
        loop {
            let now = self.succeeded();
            if now >= count {
                return Ok(Instant::now());
            }
            if Instant::now() > deadline {
                return Err(now);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relist(http: &reqwest::Client, base: &str, seen: &Mutex<Seen>) -> Result<(), String> {
    let list: Value = http
        .get(format!("{base}{RESOURCE}"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("listing TaskResets: {e}"))?
        .json()
        .await
        .map_err(|e| format!("listing TaskResets: {e}"))?;
    let at = Instant::now();
    let mut seen = lock(seen);
    for item in list["items"].as_array().into_iter().flatten() {
        note(&mut seen, item, at);
    }
    seen.resource_version = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_owned();
    Ok(())
}

/// Watch forever: re-watch from the last resourceVersion when a stream ends, relist on 410.
async fn follow(http: reqwest::Client, base: String, seen: Arc<Mutex<Seen>>) {
    let mut first = true;
    loop {
        if !first {
            lock(&seen).rewatches += 1;
        }
        first = false;
        let rv = lock(&seen).resource_version.clone();
        let url = format!(
            "{base}{RESOURCE}?watch=true&allowWatchBookmarks=true&timeoutSeconds=3600&resourceVersion={rv}"
        );
        match watch_once(&http, &url, &seen).await {
            Ok(()) => {}
            Err(WatchEnd::Expired) => {
                lock(&seen).relists += 1;
                if let Err(e) = relist(&http, &base, &seen).await {
                    eprintln!("sandbox bench: observer relist failed: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            Err(WatchEnd::Failed(e)) => {
                eprintln!("sandbox bench: observer watch failed: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

enum WatchEnd {
    Expired,
    Failed(String),
}

async fn watch_once(http: &reqwest::Client, url: &str, seen: &Mutex<Seen>) -> Result<(), WatchEnd> {
    let mut response = http
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| WatchEnd::Failed(e.to_string()))?;
    let mut buffer: Vec<u8> = Vec::new();
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return Ok(()),
            Err(e) => return Err(WatchEnd::Failed(e.to_string())),
        };
        let at = Instant::now();
        buffer.extend_from_slice(&chunk);
        let mut seen = lock(seen);
        seen.bytes += chunk.len() as u64;
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let Ok(event) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            let object = &event["object"];
            match event["type"].as_str() {
                Some("ERROR") => {
                    return Err(if object["code"] == 410 {
                        WatchEnd::Expired
                    } else {
                        WatchEnd::Failed(object.to_string())
                    });
                }
                Some("BOOKMARK") => {}
                Some(_) => {
                    seen.events += 1;
                    note(&mut seen, object, at);
                }
                None => continue,
            }
            if let Some(rv) = object["metadata"]["resourceVersion"].as_str() {
                seen.resource_version = rv.to_owned();
            }
        }
    }
}
