//! Harness of the tests on a real kube-apiserver and etcd (testenv/, built with Go).
//!
//! On first use in a test process it builds testenv/ (`testenv/build.sh` into
//! `target/tmp/testenv/bin`, under a file lock so concurrent test binaries do not race; Go's
//! caches make later builds take seconds), starts one launcher shared by the tests of the
//! binary and hands each test a fresh namespace, an admin client and the kubeconfig of each
//! identity. Tests that restart servers or watch every namespace get a private cluster instead
//! (`RealEnv::private`), one at a time. The launcher stops both servers and removes its
//! directory when its stdin closes, which the kernel does when this process exits, however it
//! exits.
//!
//! `TESTENV_KEEP=1` keeps the launcher's directory (servers' logs, controller logs under
//! `tests/<namespace>/`) for a look.
//!
//! Without `go` (or `$GO`) or `kubectl` (or `$KUBECTL`) on the PATH the tests print a loud
//! SKIPPED line and return, unless `CI` is set: then they fail.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod rbac;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde::Deserialize;

pub mod e2e;
pub mod proxy;

/// The namespace and ServiceAccount of the controller's identity (kubeconfig `controller`),
/// as `deploy/` names them.
pub const CONTROLLER_NAMESPACE: &str = "taskreset-system";
pub const CONTROLLER_ACCOUNT: &str = "taskreset-controller";
/// How long one kubectl call may take.
const KUBECTL_TIMEOUT: Duration = Duration::from_secs(60);

/// What the launcher reports on its first stdout line.
#[derive(Debug, Clone, Deserialize)]
pub struct Cluster {
    pub url: String,
    pub ca: PathBuf,
    pub dir: PathBuf,
    pub logs: PathBuf,
    /// kube-apiserver's audit log: one JSON event per completed request (Metadata level).
    pub audit: PathBuf,
    pub kubeconfigs: BTreeMap<String, PathBuf>,
}

/// One launcher: its cluster, and the pipes that keep it alive.
pub struct Launcher {
    pub cluster: Cluster,
    io: Mutex<Io>,
}

struct Io {
    child: Child,
    // Closing stdin stops the launcher.
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

static SHARED: OnceLock<Option<Launcher>> = OnceLock::new();
/// One private cluster at a time: each is an etcd and a kube-apiserver.
static PRIVATE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);
static BUILT: OnceLock<bool> = OnceLock::new();

/// Print to the real stderr, past libtest's capture: a skip or a long build must be seen.
macro_rules! loud {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn kubectl() -> PathBuf {
    std::env::var_os("KUBECTL").map_or_else(|| PathBuf::from("kubectl"), PathBuf::from)
}

fn go() -> PathBuf {
    std::env::var_os("GO").map_or_else(|| PathBuf::from("go"), PathBuf::from)
}

/// Where the Go binaries go: `<target>/tmp/testenv/bin`.
fn bin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("testenv/bin")
}

/// A program testenv/build.sh builds (`kstatus`, `helmcheck`: testenv/README.md); valid once a
/// [`RealEnv`] exists (the build ran).
pub fn testenv_bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// Build testenv/ once per test process, under a lock shared by all test processes. Returns
/// false (after a loud note) when Go is not installed and `CI` is not set.
fn build() -> bool {
    *BUILT.get_or_init(build_now)
}

fn build_now() -> bool {
    let runs = |program: PathBuf, args: &[&str]| {
        Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    for (tool, present) in [
        ("go", runs(go(), &["version"])),
        ("kubectl", runs(kubectl(), &["version", "--client"])),
    ] {
        if present {
            continue;
        }
        let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
        assert!(
            !ci,
            "CI is set but `{tool}` is not on the PATH: the real kube-apiserver tests need Go and kubectl (see testenv/README.md)"
        );
        loud!(
            "\n\n!!!!! SKIPPED: `{tool}` is not on the PATH: the tests on a real kube-apiserver did NOT run !!!!!\n\n"
        );
        return false;
    }
    let dir = bin_dir();
    std::fs::create_dir_all(&dir).expect("testenv bin dir");
    let lock = std::fs::File::create(dir.join("../build.lock")).expect("lock file");
    lock.lock().expect("lock the testenv build");
    let started = Instant::now();
    let first = !dir.join("kube-apiserver").exists();
    if first {
        loud!(
            "testenv: building kube-apiserver and etcd with Go (first time: several minutes) ..."
        );
    }
    let status = Command::new("bash")
        .arg(repo().join("testenv/build.sh"))
        .arg(&dir)
        .env("GO", go())
        .stdin(Stdio::null())
        .status()
        .expect("run testenv/build.sh");
    assert!(
        status.success(),
        "testenv/build.sh (go build) failed: {status}"
    );
    if first {
        loud!("testenv: built in {:.0?}", started.elapsed());
    }
    drop(lock);
    true
}

impl Launcher {
    fn start() -> Self {
        let keep = std::env::var_os("TESTENV_KEEP").is_some_and(|v| !v.is_empty());
        let mut child = Command::new(bin_dir().join("testenv"))
            .args(keep.then_some("-keep"))
            .args(["-namespace", CONTROLLER_NAMESPACE])
            .args(["-serviceaccount", CONTROLLER_ACCOUNT])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the testenv launcher");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read the launcher");
        let cluster: Cluster = serde_json::from_str(&line).unwrap_or_else(|e| {
            let status = child.wait();
            panic!("the testenv launcher did not start ({e}; {status:?}): {line:?}")
        });
        Self {
            cluster,
            io: Mutex::new(Io {
                child,
                stdin: Some(stdin),
                stdout,
            }),
        }
    }

    /// Send a command (`restart-apiserver`, `restart-etcd`) and wait for the answer.
    fn command(&self, cmd: &str) -> serde_json::Value {
        let mut io = self.io.lock().unwrap_or_else(|e| e.into_inner());
        let stdin = io.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{cmd}").expect("write to the launcher");
        let mut line = String::new();
        io.stdout.read_line(&mut line).expect("read the launcher");
        let answer: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
        assert_eq!(answer["event"], cmd, "{answer}");
        answer
    }
}

/// A private cluster stops when its test ends: close stdin, wait for the launcher to stop the
/// servers and clean up. (The shared one is never dropped: the kernel closes its stdin at exit.)
impl Drop for Launcher {
    fn drop(&mut self) {
        let io = self.io.get_mut().unwrap_or_else(|e| e.into_inner());
        drop(io.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Ok(None) = io.child.try_wait() {
            if Instant::now() > deadline {
                let _ = io.child.kill();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The shared cluster of this test process, started on first use; None when skipped.
fn shared() -> Option<&'static Cluster> {
    SHARED
        .get_or_init(|| build().then(Launcher::start))
        .as_ref()
        .map(|l| &l.cluster)
}

/// The client configuration of `kubeconfig`.
pub async fn client_config(kubeconfig: &Path) -> kube::Config {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config")
}

/// A client for `kubeconfig`.
pub async fn client_from(kubeconfig: &Path) -> kube::Client {
    kube::Client::try_from(client_config(kubeconfig).await).expect("client")
}

/// One test's view: a fresh namespace, an admin client, a scratch directory.
pub struct RealEnv {
    pub cluster: Cluster,
    pub client: kube::Client,
    pub ns: String,
    pub dir: PathBuf,
    /// The cluster of this test alone, if it asked for one; stopped on drop.
    private: Option<(Launcher, tokio::sync::SemaphorePermit<'static>)>,
}

impl RealEnv {
    /// A new namespace `<test>-<random>` on the cluster shared by the tests of this process,
    /// with the CRD installed; None when skipped.
    pub async fn new(test: &str) -> Option<Self> {
        let cluster = tokio::task::spawn_blocking(shared).await.expect("join")?;
        tokio::task::spawn_blocking(crd_warnings)
            .await
            .expect("join");
        Some(Self::in_namespace(cluster.clone(), None, &unique(test)).await)
    }

    /// Like [`RealEnv::new`], on a cluster of this test alone (a few seconds to start): for
    /// tests that restart the servers or run a controller over all namespaces.
    pub async fn private(test: &str) -> Option<Self> {
        Self::private_in(&unique(test)).await
    }

    /// A private cluster (see [`RealEnv::private`]) with the namespace `ns`, for manifests
    /// that name their namespace.
    pub async fn private_in(ns: &str) -> Option<Self> {
        Self::private_with(ns, true).await
    }

    /// A private cluster without the CRD (for installers that bring their own, such as Helm).
    pub async fn private_without_crd(test: &str) -> Option<Self> {
        Self::private_with(&unique(test), false).await
    }

    async fn private_with(ns: &str, crd: bool) -> Option<Self> {
        let permit = PRIVATE.acquire().await.expect("semaphore");
        let launcher = tokio::task::spawn_blocking(|| build().then(Launcher::start))
            .await
            .expect("join")?;
        let cluster = launcher.cluster.clone();
        if crd {
            let c = cluster.clone();
            tokio::task::spawn_blocking(move || install_crd(&c))
                .await
                .expect("join");
        }
        Some(Self::in_namespace(cluster, Some((launcher, permit)), ns).await)
    }

    async fn in_namespace(
        cluster: Cluster,
        private: Option<(Launcher, tokio::sync::SemaphorePermit<'static>)>,
        ns: &str,
    ) -> Self {
        let client = client_from(&cluster.kubeconfigs["admin"]).await;
        let ns = ns.to_owned();
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(ns.clone()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .expect("create namespace");
        let dir = cluster.dir.join("tests").join(&ns);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self {
            cluster,
            client,
            ns,
            dir,
            private,
        }
    }

    /// Restart a server of this test's private cluster (`restart-apiserver`, `restart-etcd`);
    /// returns once it is ready again.
    pub async fn restart(&self, cmd: &'static str) {
        let (launcher, _) = self
            .private
            .as_ref()
            .expect("restart needs RealEnv::private");
        tokio::task::block_in_place(|| launcher.command(cmd));
    }

    /// The RBAC of `kubectl kustomize <dir>` (dir: `deploy` or `deploy/namespaced`): its
    /// Namespace, ServiceAccount, Roles and bindings, applied as admin; returns the objects.
    pub async fn apply_rbac_of(&self, dir: &'static str) -> Vec<serde_json::Value> {
        let cluster = self.cluster.clone();
        tokio::task::spawn_blocking(move || apply_rbac_of(&cluster, dir))
            .await
            .expect("join")
    }

    /// The RBAC of `deploy/` (cluster-wide: a ClusterRole for every TaskReset namespace, the
    /// Lease Role in the controller's namespace), applied once per cluster.
    pub async fn shipped_rbac(&self) {
        static APPLIED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
        let cluster = self.cluster.clone();
        tokio::task::spawn_blocking(move || {
            let mut applied = APPLIED.lock().unwrap_or_else(|e| e.into_inner());
            if !applied.contains(&cluster.dir) {
                apply_rbac_of(&cluster, "deploy");
                applied.push(cluster.dir.clone());
            }
        })
        .await
        .expect("join");
    }

    pub fn kubeconfig(&self, identity: &str) -> &Path {
        &self.cluster.kubeconfigs[identity]
    }

    /// kubectl as admin in this namespace, bounded by a timeout, off the async runtime.
    pub async fn kubectl(&self, args: &[&str]) -> Output {
        let mut cmd = kubectl_command(self.kubeconfig("admin"), &self.dir);
        cmd.args(["--namespace", &self.ns]).args(args);
        let what = args.join(" ");
        tokio::task::spawn_blocking(move || run_bounded(cmd, &what))
            .await
            .expect("join")
    }

    /// kubectl with the kubeconfig of `identity`, no default namespace.
    pub async fn kubectl_as(&self, identity: &str, args: &[&str]) -> Output {
        let mut cmd = kubectl_command(self.kubeconfig(identity), &self.dir);
        cmd.args(args);
        let what = args.join(" ");
        tokio::task::spawn_blocking(move || run_bounded(cmd, &what))
            .await
            .expect("join")
    }

    /// The path of a file of the repository, as a string for kubectl.
    pub fn repo_file(&self, path: &str) -> String {
        repo().join(path).to_string_lossy().into_owned()
    }

    /// kubectl that must succeed: its stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args).await;
        assert!(
            out.status.success(),
            "kubectl {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// kubectl that must fail: its stderr.
    pub async fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args).await;
        assert!(
            !out.status.success(),
            "kubectl {} should have failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Write `content` into the scratch directory; its path.
    pub fn write(&self, name: &str, content: &str) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, content).expect("write");
        path.to_string_lossy().into_owned()
    }

    /// Create a Secret with `data` in this namespace.
    pub async fn secret(&self, name: &str, data: &[(&str, &str)]) {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            string_data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..Secret::default()
        };
        Api::<Secret>::namespaced(self.client.clone(), &self.ns)
            .create(&PostParams::default(), &secret)
            .await
            .expect("create Secret");
    }

    /// Start the real controller binary with the kubeconfig of `identity`, calling `roma`
    /// (the simulator's URL); logs go to the scratch directory.
    pub fn spawn_controller(
        &self,
        identity: &str,
        watch: Watch,
        roma: &str,
        extra: &[&str],
    ) -> Proc {
        let name = format!("controller-{identity}");
        self.spawn_named(&name, self.kubeconfig(identity), watch, roma, extra)
    }

    /// Like [`RealEnv::spawn_controller`], with any kubeconfig (e.g. one through a
    /// [`proxy::Proxy`]), logging to `<name>.log`: for several controllers in one test.
    pub fn spawn_named(
        &self,
        name: &str,
        kubeconfig: &Path,
        watch: Watch,
        roma: &str,
        extra: &[&str],
    ) -> Proc {
        let namespace = match watch {
            Watch::ThisNamespace => vec!["--namespace", &self.ns],
            Watch::AllNamespaces => vec![],
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_taskreset-controller"));
        cmd.arg("run")
            .args(namespace)
            .args(["--allowed-endpoints", roma, "--default-endpoint", roma])
            .args(["--insecure-allow-http", "--metrics-addr", "127.0.0.1:0"])
            .args([
                "--retry-base-delay",
                "100ms",
                "--max-resets-per-second",
                "0",
            ])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("POD_NAMESPACE");
        spawn_logged(&mut cmd, self.dir.join(format!("{name}.log")))
    }
}

/// Start the controller binary `cmd` describes, with its debug logs, stdout and stderr in
/// `log_path`.
pub fn spawn_logged(cmd: &mut Command, log_path: PathBuf) -> Proc {
    let log = std::fs::File::create(&log_path).expect("log file");
    let child = cmd
        .env("RUST_LOG", "info,taskreset_controller=debug")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn the controller binary");
    Proc {
        child,
        log: log_path,
    }
}

/// `<test>-<random>`, a namespace name.
fn unique(test: &str) -> String {
    format!("{test}-{:06x}", fastrand::u32(..0xff_ffff))
}

/// What the controller watches.
#[derive(Debug, Clone, Copy)]
pub enum Watch {
    /// `--namespace <the test's namespace>`: other tests on the shared cluster are not seen.
    ThisNamespace,
    /// Every namespace, as `deploy/` runs it: only on a private cluster.
    AllNamespaces,
}

/// A kubectl with its own cache and HOME, so tests share nothing through ~/.kube.
fn kubectl_command(kubeconfig: &Path, scratch: &Path) -> Command {
    let mut cmd = Command::new(kubectl());
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(scratch.join(".kube-cache"))
        .env("HOME", scratch)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn run_bounded(mut cmd: Command, what: &str) -> Output {
    let mut child = cmd.spawn().expect("spawn kubectl (is it on the PATH?)");
    let deadline = Instant::now() + KUBECTL_TIMEOUT;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("kubectl {what} did not finish within {KUBECTL_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// kubectl as admin, outside any test namespace; (stdout, stderr), panics on failure.
fn admin_kubectl(cluster: &Cluster, args: &[&str]) -> (String, String) {
    let scratch = cluster.dir.join("tests");
    std::fs::create_dir_all(&scratch).expect("scratch");
    let mut cmd = kubectl_command(&cluster.kubeconfigs["admin"], &scratch);
    cmd.args(args);
    let out = run_bounded(cmd, &args.join(" "));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "kubectl {} failed: {stderr}",
        args.join(" "),
    );
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

/// What kubectl printed on stderr while installing deploy/crd.yaml on the shared cluster (once
/// per process): the server's warnings.
pub fn crd_warnings() -> &'static str {
    static WARNINGS: OnceLock<String> = OnceLock::new();
    WARNINGS.get_or_init(|| install_crd(shared().expect("a cluster")))
}

/// Install deploy/crd.yaml (server-side apply) and wait until it is Established and its
/// OpenAPI is published; kubectl's stderr.
fn install_crd(cluster: &Cluster) -> String {
    let crd = repo().join("deploy/crd.yaml");
    let (_, warnings) = admin_kubectl(
        cluster,
        &["apply", "--server-side", "-f", &crd.to_string_lossy()],
    );
    admin_kubectl(
        cluster,
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/taskresets.fdi.roma.io",
        ],
    );
    // kube-apiserver publishes the CRD's OpenAPI (what `kubectl explain` reads) a little
    // after Established: wait for it too.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !admin_kubectl(cluster, &["get", "--raw", "/openapi/v3"])
        .0
        .contains("apis/fdi.roma.io/v1alpha1")
    {
        assert!(
            Instant::now() < deadline,
            "the CRD's OpenAPI was not published"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    warnings
}

fn apply_rbac_of(cluster: &Cluster, dir: &str) -> Vec<serde_json::Value> {
    let (rendered, _) = admin_kubectl(cluster, &["kustomize", &repo().join(dir).to_string_lossy()]);
    let objects: Vec<serde_json::Value> = serde_saphyr::from_multiple(&rendered)
        .expect("rendered manifests")
        .into_iter()
        .filter(|o: &serde_json::Value| {
            matches!(
                o["kind"].as_str(),
                Some(
                    "Namespace"
                        | "ServiceAccount"
                        | "ClusterRole"
                        | "ClusterRoleBinding"
                        | "Role"
                        | "RoleBinding"
                )
            )
        })
        .collect();
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
    let path = cluster
        .dir
        .join(format!("rbac-{}.json", dir.replace('/', "-")));
    std::fs::write(&path, list.to_string()).expect("write RBAC");
    admin_kubectl(
        cluster,
        &["apply", "--server-side", "-f", &path.to_string_lossy()],
    );
    objects
}

/// A child process, killed on drop; its log is kept for a look.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- {} (last 40 lines) ---\n{}",
                self.log.display(),
                self.log()
                    .lines()
                    .rev()
                    .take(40)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}

impl Proc {
    /// SIGTERM, then wait (at most 30 s) for the exit; its status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{pid} still running 30 s after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}

/// Delete the TaskReset `name` and wait until it is gone.
pub async fn delete_and_wait(api: &Api<taskreset_controller::api::TaskReset>, name: &str) {
    api.delete(name, &kube::api::DeleteParams::default())
        .await
        .expect("delete");
    let deadline = Instant::now() + Duration::from_secs(30);
    while api.get_opt(name).await.expect("get").is_some() {
        assert!(Instant::now() < deadline, "{name} was not deleted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
