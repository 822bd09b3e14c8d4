//! `taskreset-controller sandbox` as a newcomer uses it: the binary started as the README says,
//! then real kubectl and curl. The README's first TaskReset, applied exactly as printed there,
//! succeeds; the sandbox shows it (every TaskReset, not only its examples); the metrics
//! address and the log file it prints are real; and the README's failure rehearsal gives the
//! phases the README promises.
//!
//! Skipped, loudly, without kubectl or curl (failing instead when `CI` is set).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md")
}

/// The first fenced block of `lang` after the heading `heading`.
fn block_after(text: &str, heading: &str, lang: &str) -> String {
    let start = text
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README.md has no {heading:?}"));
    let rest = &text[start..];
    let open = format!("```{lang}\n");
    let from = rest.find(&open).expect("a fenced block") + open.len();
    let len = rest[from..].find("\n```").expect("its end");
    format!("{}\n", &rest[from..from + len])
}

fn have(tool: &str, arg: &str) -> bool {
    let found = Command::new(tool)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is not on the PATH and CI is set"
        );
        eprintln!(
            "!!!!! SKIPPED: {tool} is not on the PATH; this test needs the real {tool} !!!!!"
        );
    }
    found
}

/// The sandbox process, its stdout collected line by line; killed when dropped.
struct Sandbox {
    child: Child,
    out: Arc<Mutex<Vec<String>>>,
    dir: PathBuf,
}

impl Sandbox {
    fn start(dir: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_taskreset-controller"))
            .arg("sandbox")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the sandbox");
        let out = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::clone(&out);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            out,
            dir: dir.to_owned(),
        }
    }

    fn output(&self) -> String {
        self.out.lock().unwrap().join("\n")
    }

    /// The value printed after `label` (e.g. "ROMA FDI simulator:").
    fn printed(&self, label: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(value) = self
                .out
                .lock()
                .unwrap()
                .iter()
                .find_map(|l| l.strip_prefix(label))
            {
                return value.trim().to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "the sandbox never printed {label:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_output(&self, what: &str, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !self.out.lock().unwrap().iter().any(|l| pred(l)) {
            assert!(
                Instant::now() < deadline,
                "the sandbox never printed {what}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.dir.join("sandbox.kubeconfig"))
            .args(args)
            .output()
            .expect("kubectl");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Wait until `jsonpath` of TaskReset `name` in `namespace` reads `want`.
    fn wait_field(&self, namespace: &str, name: &str, jsonpath: &str, want: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.kubectl(&[
                "-n",
                namespace,
                "get",
                "tr",
                name,
                "-o",
                &format!("jsonpath={jsonpath}"),
            ]);
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{namespace}/{name} {jsonpath}: {got:?}, not {want:?}\n{}\n{}",
                self.kubectl(&["get", "tr", "-A", "-o", "wide"]),
                self.output()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_works_in_the_sandbox() {
    if !have("kubectl", "version") || !have("curl", "--version") {
        return;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("sandbox-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sandbox = Sandbox::start(&dir);
    let roma = sandbox.printed("ROMA FDI simulator:");
    let metrics = sandbox.printed("Controller metrics:");
    let logs = sandbox.printed("Controller logs:");
    sandbox.wait_output("the watching line", |l| {
        l.starts_with("Applied 2 TaskResets")
    });

    // The README's first TaskReset, exactly as printed, in its own namespace.
    let readme = readme();
    let first = block_after(&readme, "## A first TaskReset", "yaml");
    assert!(first.contains("name: orders-replay") && first.contains("namespace: data"));
    std::fs::write(dir.join("first.yaml"), &first).unwrap();
    let applied = sandbox.kubectl(&["apply", "-f", dir.join("first.yaml").to_str().unwrap()]);
    assert_eq!(
        applied.trim(),
        "taskreset.fdi.roma.io/orders-replay created"
    );
    sandbox.wait_field("data", "orders-replay", "{.status.phase}", "Succeeded");
    sandbox.wait_field(
        "data",
        "orders-replay",
        "{.status.dateFrom}",
        "1630052714000",
    );
    // Shown as it changes, though it is none of the sandbox's examples.
    sandbox.wait_output("data/orders-replay Succeeded", |l| {
        l.contains("data/orders-replay") && l.contains("Succeeded")
    });

    // The metrics address and the log file it printed.
    let scrape = reqwest::get(&metrics).await.unwrap().text().await.unwrap();
    assert!(
        scrape.contains("taskreset_resets_total{outcome=\"succeeded\"} 3"),
        "{scrape}"
    );
    let log_file = logs
        .strip_prefix("tail -f ")
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("{logs}"));
    let log = std::fs::read_to_string(dir.join(log_file)).unwrap();
    assert!(
        log.contains("taskreset=data/orders-replay") && log.contains("calling reset"),
        "{log}"
    );

    // The failure rehearsal, as the README writes it, with this sandbox's address.
    let rehearsal = block_after(&readme, "## Rehearsing failures in the sandbox", "sh");
    let script = rehearsal
        .lines()
        .map(|l| {
            if l.starts_with("ROMA=") {
                format!("ROMA={roma}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let ran = Command::new("bash")
        .args(["-euc", &script])
        .current_dir(&dir)
        .output()
        .expect("bash");
    assert!(
        ran.status.success(),
        "{}{}",
        String::from_utf8_lossy(&ran.stdout),
        String::from_utf8_lossy(&ran.stderr)
    );
    let ns = "default";
    sandbox.wait_field(ns, "rehearse-400", "{.status.phase}", "Failed");
    sandbox.wait_field(ns, "rehearse-400", "{.status.httpStatus}", "400");
    sandbox.wait_field(ns, "rehearse-400", "{.status.errorCode}", "FDI.3150");
    sandbox.wait_field(ns, "rehearse-404", "{.status.phase}", "Failed");
    sandbox.wait_field(ns, "rehearse-404", "{.status.errorCode}", "FDI.3083");
    sandbox.wait_output("rehearse-500 Retrying", |l| {
        l.contains("rehearse-500") && l.contains("Retrying")
    });
    sandbox.wait_field(ns, "rehearse-500", "{.status.phase}", "Succeeded");
    sandbox.wait_field(ns, "rehearse-500", "{.status.attempts}", "2");
    sandbox.wait_field(ns, "rehearse-timeout", "{.status.phase}", "Unknown");
    let wide = sandbox.kubectl(&["get", "tr", "-o", "wide"]);
    assert!(
        wide.contains("ATTEMPTS") && wide.contains("MESSAGE"),
        "{wide}"
    );
    println!("{wide}\n{}", sandbox.output());
}
