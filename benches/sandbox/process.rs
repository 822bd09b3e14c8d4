//! The controller under test as a child process, and what `/proc` says about it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The pid of the running controller, for the watchdog (0: none).
pub static CHILD_PID: AtomicU32 = AtomicU32::new(0);

/// CPU time, memory and threads of a process at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// utime + stime of all its threads, in seconds.
    pub cpu_seconds: f64,
    /// Resident set size now (VmRSS).
    pub rss_bytes: u64,
    /// Peak resident set size since start (VmHWM).
    pub hwm_bytes: u64,
    /// Threads.
    pub threads: u64,
}

fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// Read `/proc/<pid>/stat` and `/proc/<pid>/status`; `None` once the process is gone.
pub fn sample(pid: u32) -> Option<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3, "state".
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    let cpu_seconds = (ticks(11)? + ticks(12)?) / clock_ticks();
    let threads = fields.get(17).and_then(|f| f.parse().ok()).unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |v| v * 1024)
    };
    Some(Sample {
        cpu_seconds,
        rss_bytes: kib("VmRSS:"),
        hwm_bytes: kib("VmHWM:"),
        threads,
    })
}

/// This benchmark's own process (the simulators and the observer run in it).
pub fn own() -> Sample {
    sample(std::process::id()).unwrap_or_default()
}

/// The controller binary, running `run` against the simulators; killed on drop.
pub struct Controller {
    child: Child,
    /// When it was spawned.
    pub started: Instant,
    log: PathBuf,
}

impl Controller {
    /// Spawn `binary run` with the simulators' kubeconfig and `flags`; output goes to `log`.
    pub fn spawn(
        binary: &Path,
        kubeconfig: &Path,
        flags: &[String],
        log: PathBuf,
    ) -> Result<Self, String> {
        let out = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let started = Instant::now();
        let child = Command::new(binary)
            .arg("run")
            .args(flags)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", binary.display()))?;
        CHILD_PID.store(child.id(), Ordering::SeqCst);
        Ok(Self {
            child,
            started,
            log,
        })
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resources now.
    pub fn sample(&self) -> Sample {
        sample(self.pid()).unwrap_or_default()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The metrics address it logs at start-up (`metrics=ADDR` in text logs,
    /// `"metrics":"ADDR"` in JSON logs).
    pub async fn metrics_addr(&mut self, within: Duration) -> Result<String, String> {
        let deadline = Instant::now() + within;
        loop {
            let text = self.log();
            let found = ["metrics=", "\"metrics\":\""].iter().find_map(|marker| {
                text.split(marker)
                    .nth(1)
                    .and_then(|rest| rest.split([' ', '"', ',', '\n']).next())
                    .filter(|addr| !addr.is_empty())
            });
            if let Some(addr) = found {
                return Ok(addr.to_owned());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "the controller exited ({status}) before start-up:\n{}",
                    tail(&text)
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no metrics address logged within {within:?}:\n{}",
                    tail(&text)
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Poll `/readyz` until 200; the time from spawn to that answer.
    pub async fn wait_ready(
        &mut self,
        http: &reqwest::Client,
        addr: &str,
        within: Duration,
    ) -> Result<Duration, String> {
        let deadline = Instant::now() + within;
        let url = format!("http://{addr}/readyz");
        loop {
            if let Ok(response) = http.get(&url).send().await
                && response.status().as_u16() == 200
            {
                return Ok(self.started.elapsed());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("the controller exited ({status}) before ready"));
            }
            if Instant::now() > deadline {
                return Err(format!("/readyz not 200 within {within:?}"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// SIGTERM, then wait (at most `within`, then SIGKILL); how long the shutdown took.
    pub async fn terminate(&mut self, within: Duration) -> Result<Duration, String> {
        let asked = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .map_err(|e| format!("kill -TERM: {e}"))?;
        if !status.success() {
            return Err(format!("kill -TERM {} failed", self.pid()));
        }
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => {
                    CHILD_PID.store(0, Ordering::SeqCst);
                    return Ok(asked.elapsed());
                }
                Ok(Some(status)) => return Err(format!("the controller exited with {status}")),
                Ok(None) if asked.elapsed() > within => {
                    return Err(format!("the controller did not stop within {within:?}"));
                }
                Ok(None) => tokio::time::sleep(Duration::from_millis(10)).await,
                Err(e) => return Err(format!("waiting for the controller: {e}")),
            }
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        CHILD_PID.store(0, Ordering::SeqCst);
    }
}

/// The last lines of a log, for an error message.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Stop the whole run after `limit`: kill the controller (if any) and exit non-zero, so the
/// benchmark always ends by itself.
pub fn watchdog(limit: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("sandbox bench: time limit {limit:?} reached, stopping");
        let pid = CHILD_PID.load(Ordering::SeqCst);
        if pid != 0 {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        std::process::exit(2);
    });
}
