//! The Box simulator as a separate process: the bench's peak RSS is then the sync's, not the
//! simulator's million events. The child is stopped on every way out: `stop`, `Drop` (errors,
//! Ctrl-C), and the kernel's parent-death signal if the bench itself is killed.

use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::sync::mpsc;

const LISTENING: &str = "box-sim listening on ";
const SUMMARY: &str = "box-sim summary ";
const COUNTERS: &str = "box-sim counters ";

/// The simulator's ground truth, from `--summary`.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct SimSummary {
    pub enterprise_id: String,
    /// Managed users who are people (admins included), app users apart.
    pub managed_users: u64,
    pub app_users: u64,
    pub external_users: u64,
    pub users_with_login: u64,
    #[serde(default)]
    pub users_with_content: u64,
    pub login_events: u64,
    #[serde(default)]
    pub content_events: u64,
    /// All events in the admin stream (LOGIN, content, and the others the sync filters out).
    pub events: u64,
}

/// Requests the simulator answered, printed when it stops.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct SimCounters {
    pub total: u64,
    pub rate_limited: u64,
    pub users: u64,
    pub events: u64,
    pub token: u64,
    pub dropped: u64,
}

pub struct SimProcess {
    child: Option<Child>,
    lines: mpsc::UnboundedReceiver<String>,
    pub api_base: String,
    pub summary: SimSummary,
    pub log: PathBuf,
}

/// `BOX_SIM_BIN`, else `box-sim` next to this executable (both are built into `target/release`).
pub fn find_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("BOX_SIM_BIN") {
        let path = PathBuf::from(path);
        anyhow::ensure!(path.is_file(), "BOX_SIM_BIN={} is not a file", path.display());
        return Ok(path);
    }
    let exe = std::env::current_exe().context("locating the bench executable")?;
    let beside = exe.with_file_name("box-sim");
    anyhow::ensure!(
        beside.is_file(),
        "no box-sim binary at {}: build it (cargo build --release -p box-sim) or set BOX_SIM_BIN",
        beside.display()
    );
    Ok(beside)
}

impl SimProcess {
    /// Starts the simulator on an ephemeral loopback port and waits (at most `ready_within`) for
    /// its listening and summary lines. Generating a large enterprise takes a while.
    pub async fn start(bin: &Path, args: &[String], log: PathBuf, ready_within: Duration) -> anyhow::Result<Self> {
        let stderr = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut command = Command::new(bin);
        command
            .args(["--port", "0", "--summary"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        // SAFETY: prctl is async-signal-safe and touches no state of this process. It makes the
        // kernel stop the simulator if the bench dies without running its destructors (SIGKILL,
        // or a panic under panic = "abort").
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("the simulator's stdout")?;
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut sim = SimProcess {
            child: Some(child),
            lines,
            api_base: String::new(),
            summary: SimSummary {
                enterprise_id: String::new(),
                managed_users: 0,
                app_users: 0,
                external_users: 0,
                users_with_login: 0,
                users_with_content: 0,
                login_events: 0,
                content_events: 0,
                events: 0,
            },
            log,
        };
        let deadline = tokio::time::Instant::now() + ready_within;
        let base = sim.line_with(LISTENING, deadline).await?;
        let url = url::Url::parse(base.trim()).with_context(|| format!("the simulator's address {base:?}"))?;
        // Only loopback: the simulator hands out tokens to anyone who asks.
        anyhow::ensure!(
            url.host_str() == Some("127.0.0.1") && url.scheme() == "http",
            "the simulator listens on {url}, not on loopback"
        );
        sim.api_base = base.trim().trim_end_matches('/').to_owned();
        let summary = sim.line_with(SUMMARY, deadline).await?;
        sim.summary = serde_json::from_str(&summary).context("the simulator's summary line")?;
        Ok(sim)
    }

    async fn line_with(&mut self, prefix: &str, deadline: tokio::time::Instant) -> anyhow::Result<String> {
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Err(_) => bail!(
                    "the simulator did not print {prefix:?} in time (its log: {})",
                    self.log.display()
                ),
                Ok(None) => bail!(
                    "the simulator exited before printing {prefix:?} (its log: {})",
                    self.log.display()
                ),
                Ok(Some(line)) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return Ok(rest.to_owned());
                    }
                }
            }
        }
    }

    /// Stops the simulator (SIGTERM) and returns its request counters.
    pub async fn stop(mut self) -> anyhow::Result<SimCounters> {
        self.signal(libc::SIGTERM);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let counters = self.line_with(COUNTERS, deadline).await;
        self.reap(Duration::from_secs(5));
        serde_json::from_str(&counters?).context("the simulator's counters line")
    }

    fn signal(&self, signal: libc::c_int) {
        if let Some(child) = &self.child {
            if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                // SAFETY: kill(2) on our own child's pid, which is not reaped yet, so not reused.
                unsafe {
                    libc::kill(pid, signal);
                }
            }
        }
    }

    /// Waits for the child to exit, at most `grace`, then kills it.
    fn reap(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else { return };
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.signal(libc::SIGTERM);
            self.reap(Duration::from_secs(5));
        }
    }
}
