//! Running external programs (`ctr`, `gcc`) with a deadline and captured output.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Result, TestkitError};

/// What a finished program left behind.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    /// Exit status of the program (for `ctr task exec`: of the process inside the container).
    pub status: ExitStatus,
    /// Standard output, decoded lossily as UTF-8.
    pub stdout: String,
    /// Standard error, decoded lossily as UTF-8.
    pub stderr: String,
}

impl ExecOutput {
    /// Whether the program exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The exit code, if the program exited normally.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Renders a command line for messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn reader<R: Read + Send + 'static>(stream: Option<R>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut s) = stream {
            // A read error just truncates what we report; the exit status still tells.
            let _ = s.read_to_end(&mut buf);
        }
        buf
    })
}

/// Runs `cmd` (stdin closed), capturing output; kills it after `timeout`.
///
/// Returns the output whatever the exit status; see [`run_checked`] for the strict variant.
pub(crate) fn run(mut cmd: Command, timeout: Duration) -> Result<ExecOutput> {
    let described = describe(&cmd);
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|source| TestkitError::Spawn { program, source })?;
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(TestkitError::Timeout {
                    command: described,
                    timeout,
                });
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(TestkitError::io(described, e));
            }
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    Ok(ExecOutput {
        status,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

/// Like [`run`], but a non-zero exit is an error carrying stderr.
pub(crate) fn run_checked(cmd: Command, timeout: Duration) -> Result<ExecOutput> {
    let described = describe(&cmd);
    let out = run(cmd, timeout)?;
    if out.success() {
        Ok(out)
    } else {
        Err(TestkitError::CommandFailed {
            command: described,
            status: out.status.to_string(),
            stderr: out.stderr.trim().to_owned(),
        })
    }
}
