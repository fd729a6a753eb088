//! The real Lambda binaries as processes: each started with the environment Lambda gives a
//! deployed function (its configured variables, read back from the emulator, plus the variables
//! Lambda itself sets), restarted when it exits (Lambda starts a new execution environment), and
//! its stdout and stderr collected line by line as CloudWatch Logs would receive them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Pause before a function whose process exited is started again.
const RESTART_PAUSE: Duration = Duration::from_millis(500);
/// Lines kept per run; older ones are dropped (the count of dropped lines is kept).
const MAX_KEPT_LINES: usize = 200_000;

/// One log line a function wrote, as CloudWatch gets it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub function: String,
    /// `stdout` or `stderr`.
    pub stream: &'static str,
    pub line: String,
}

/// Every function's log lines, in arrival order; optionally echoed to our stderr.
#[derive(Clone, Default)]
pub struct LogSink {
    lines: Arc<Mutex<Vec<LogLine>>>,
    echo: bool,
}

impl LogSink {
    pub fn new(echo: bool) -> Self {
        Self {
            lines: Arc::default(),
            echo,
        }
    }

    fn push(&self, line: LogLine) {
        if self.echo {
            eprintln!("{}", line.line);
        }
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        if lines.len() >= MAX_KEPT_LINES {
            lines.remove(0);
        }
        lines.push(line);
    }

    /// The lines written so far.
    pub fn lines(&self) -> Vec<LogLine> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// How to start one function.
#[derive(Clone, Debug)]
pub struct FunctionProcess {
    /// The deployed function name (AWS_LAMBDA_FUNCTION_NAME).
    pub name: String,
    pub binary: PathBuf,
    /// The complete environment: nothing of ours leaks in.
    pub environment: BTreeMap<String, String>,
}

/// A function kept running until [`Supervisor::stop`] (or drop).
pub struct Supervisor {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    starts: Arc<Mutex<u32>>,
}

impl Supervisor {
    /// Starts the process now and again whenever it exits, until stopped.
    pub fn start(function: FunctionProcess, logs: LogSink) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let starts = Arc::new(Mutex::new(0));
        let counted = starts.clone();
        let task = tokio::spawn(async move {
            while !*stopped.borrow() {
                let mut child = match spawn(&function, &logs) {
                    Ok(child) => child,
                    Err(error) => {
                        tracing::error!(function = %function.name, binary = %function.binary.display(), %error, "cannot start the function's binary");
                        let _ = tokio::time::timeout(RESTART_PAUSE, stopped.changed()).await;
                        continue;
                    }
                };
                *counted.lock().unwrap_or_else(PoisonError::into_inner) += 1;
                let exited = tokio::select! {
                    status = child.wait() => Some(status),
                    _ = stopped.changed() => None,
                };
                match exited {
                    Some(status) => {
                        tracing::warn!(function = %function.name, ?status, "the function's process exited; starting a new one");
                        tokio::time::sleep(RESTART_PAUSE).await;
                    }
                    None => {
                        let _ = child.kill().await;
                        return;
                    }
                }
            }
        });
        Self {
            stop,
            task: Some(task),
            starts,
        }
    }

    /// How many times the process was started (1 unless it exited).
    pub fn starts(&self) -> u32 {
        *self.starts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Kills the process and waits until it is gone.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn spawn(function: &FunctionProcess, logs: &LogSink) -> std::io::Result<Child> {
    let mut child = Command::new(&function.binary)
        .env_clear()
        .envs(&function.environment)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    if let Some(stdout) = child.stdout.take() {
        forward(stdout, function.name.clone(), "stdout", logs.clone());
    }
    if let Some(stderr) = child.stderr.take() {
        forward(stderr, function.name.clone(), "stderr", logs.clone());
    }
    Ok(child)
}

fn forward(
    stream: impl AsyncRead + Unpin + Send + 'static,
    function: String,
    name: &'static str,
    logs: LogSink,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            logs.push(LogLine {
                function: function.clone(),
                stream: name,
                line,
            });
        }
    });
}
