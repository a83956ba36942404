//! Log capture for the secret-leak checks (reliability item 27).
//!
//! - [`capture_to_suite_log`]: every test process that starts a simulator or AWS resources logs at
//!   DEBUG (seatsync at TRACE) into `$SEATSYNC_TEST_LOG_DIR/<pid>.log`, and every simulator's issued
//!   secrets go to `secrets.txt` there; `scripts/test` then searches all logs for all secrets.
//! - [`capture_here`]: one test's own logs, in memory, for a direct assertion.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Names the folder that collects the suite's logs and issued secrets.
pub const LOG_DIR_ENV: &str = "SEATSYNC_TEST_LOG_DIR";

const FILTER: &str = "debug,seatsync=trace,seatsync_tests=trace,box_sim=trace,sso_sim=trace";

/// Installs the process-wide file logger once, when `SEATSYNC_TEST_LOG_DIR` is set.
pub fn capture_to_suite_log() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let Some(dir) = std::env::var_os(LOG_DIR_ENV) else {
            return;
        };
        let path = std::path::Path::new(&dir).join(format!("{}.log", std::process::id()));
        let Ok(file) = std::fs::OpenOptions::new().create(true).append(true).open(path) else {
            return;
        };
        let _ = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new(FILTER))
            .with_ansi(false)
            .with_writer(Mutex::new(file))
            .try_init();
    });
}

/// Appends secrets a test saw issued (tokens, codes, states, client secrets) to the suite's list.
pub fn record_secrets<I: IntoIterator<Item = String>>(secrets: I) {
    let Some(dir) = std::env::var_os(LOG_DIR_ENV) else {
        return;
    };
    let path = std::path::Path::new(&dir).join("secrets.txt");
    let mut text = String::new();
    for s in secrets {
        if !s.is_empty() && !s.contains('\n') {
            text.push_str(&s);
            text.push('\n');
        }
    }
    if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = file.write_all(text.as_bytes());
    }
}

/// An in-memory log of everything this thread's tasks log (use a current-thread runtime).
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

pub struct CapturedWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = CapturedWriter;
    fn make_writer(&'a self) -> Self::Writer {
        CapturedWriter(self.0.clone())
    }
}

/// Captures everything logged on this thread at TRACE until the guard drops.
pub fn capture_here() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new("trace"))
        .with_ansi(false)
        .with_writer(captured.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    (captured, guard)
}
