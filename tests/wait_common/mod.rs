//! Waits with a deadline, for the tests that run child processes or wait for a background
//! thread: every wait on a child, on its pipes or on a condition ends by the deadline, after
//! which the child is killed and the test fails with a message that says what it was waiting
//! for, instead of hanging.
//!
//! The deadline only catches a child or a thread that is stuck, so it is generous: 120 s by
//! default, or `BALLAST_TEST_DEADLINE_S` seconds. A slow or heavily loaded machine must never
//! reach it; a test that needs the program to have made progress waits for the program's own
//! signal (a line, a report on a pipe, a counter), not for a guessed time.
//!
//! Children are started with [`Running::start`], which also keeps a child from holding on to
//! a log directory's lock that a test holds: see [`directory_lock_hold`].
#![allow(dead_code)]

use std::io::{Read, Write};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

const DEADLINE_S_DEFAULT: u64 = 120;

/// How long any one wait may last before the test fails.
pub fn deadline_duration() -> Duration {
    let seconds = std::env::var("BALLAST_TEST_DEADLINE_S")
        .ok()
        .and_then(|seconds| seconds.parse().ok())
        .unwrap_or(DEADLINE_S_DEFAULT);
    Duration::from_secs(seconds)
}

/// The deadline of a wait that starts now.
pub fn deadline() -> Instant {
    Instant::now() + deadline_duration()
}

/// Calls `probe` until it returns `Some`, sleeping `interval` between calls, and fails the test
/// if the deadline passes first. The probe may also drive the program on (a small write, say),
/// so that what it waits for does not depend on how the threads were scheduled.
#[track_caller]
pub fn poll_until<T>(what: &str, interval: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = deadline();
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "waited {} s for {what}, in vain",
            deadline_duration().as_secs()
        );
        std::thread::sleep(interval);
    }
}

/// From its fork to its exec a child process holds a copy of every descriptor of this process,
/// close-on-exec ones included, and the kernel lets go of those only as the exec completes,
/// which can be a moment after `Command::spawn` has returned. A `flock` lives as long as any
/// copy of its descriptor: a child started while this process holds a log directory's lock
/// can keep that lock after this process has closed the directory, and the writer that opens
/// it next (this process, or a child of its own) finds it `Locked`, all the more often on a
/// loaded machine. So a child starts only while no test of this binary holds a directory's
/// lock: holders share this lock, and a start takes it alone.
static DIRECTORY_LOCKS: RwLock<()> = RwLock::new(());

/// Held by a test for as long as this process holds a log directory's lock (a writer's
/// `DirectStorage`) that a writer will take again after it, so that no child starts meanwhile
/// and keeps a copy of it. A test must not start a child while it holds this.
pub fn directory_lock_hold() -> RwLockReadGuard<'static, ()> {
    DIRECTORY_LOCKS
        .read()
        .unwrap_or_else(PoisonError::into_inner)
}

/// A child process that is killed (and reaped) when dropped, also when the test fails, so that
/// no writer outlives its test.
pub struct Running {
    child: Child,
    what: String,
}

impl Running {
    /// Starts `command`; `what` names the child in failure messages.
    pub fn start(command: &mut Command, what: impl Into<String>) -> std::io::Result<Running> {
        let starting = DIRECTORY_LOCKS
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let child = command.spawn()?;
        drop(starting);
        Ok(Running {
            child,
            what: what.into(),
        })
    }

    /// The child's stdin (the command must have piped it); dropping it closes the pipe.
    pub fn stdin(&mut self) -> std::process::ChildStdin {
        self.child.stdin.take().expect("stdin is piped")
    }

    /// The child's stdout, read on a thread of its own (the command must have piped it).
    pub fn stdout(&mut self) -> Pipe {
        let stdout: ChildStdout = self.child.stdout.take().expect("stdout is piped");
        Pipe::new(stdout, format!("the stdout of {}", self.what))
    }

    /// The child's stderr, read on a thread of its own (the command must have piped it).
    pub fn stderr(&mut self) -> Pipe {
        let stderr: ChildStderr = self.child.stderr.take().expect("stderr is piped");
        Pipe::new(stderr, format!("the stderr of {}", self.what))
    }

    /// Waits for the child to exit; at the deadline, kills it and fails the test.
    #[track_caller]
    pub fn wait(&mut self) -> ExitStatus {
        match self.wait_or_kill() {
            Some(status) => status,
            None => panic!(
                "{} did not exit within {} s; killed it",
                self.what,
                deadline_duration().as_secs()
            ),
        }
    }

    /// Waits for the child to exit; at the deadline, kills it and returns `None`.
    fn wait_or_kill(&mut self) -> Option<ExitStatus> {
        let deadline = deadline();
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) => {}
                Err(error) => panic!("wait for {}: {error}", self.what),
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Kills the child with SIGKILL and reaps it.
    #[track_caller]
    pub fn kill(&mut self) -> ExitStatus {
        self.child
            .kill()
            .unwrap_or_else(|error| panic!("kill {}: {error}", self.what));
        self.wait()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // After a wait, `kill` does nothing: the process is reaped and its id may be reused.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pipe from a child, read on a thread of its own, so that every wait on it has a deadline.
pub struct Pipe {
    chunks: Receiver<Vec<u8>>,
    bytes: Vec<u8>,
    /// Bytes already returned by `line`.
    consumed: usize,
    ended: bool,
    what: String,
}

impl Pipe {
    pub fn new(mut source: impl Read + Send + 'static, what: impl Into<String>) -> Pipe {
        let (sender, chunks) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buffer = vec![0u8; 64 * 1024];
            // The channel closes when the thread ends: at the end of the pipe, on an error,
            // or when the `Pipe` is gone.
            loop {
                let size = match source.read(&mut buffer) {
                    Ok(0) => return,
                    Ok(size) => size,
                    Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => return,
                };
                if sender.send(buffer[..size].to_vec()).is_err() {
                    return;
                }
            }
        });
        Pipe {
            chunks,
            bytes: Vec::new(),
            consumed: 0,
            ended: false,
            what: what.into(),
        }
    }

    /// Every byte received so far, taking in what has arrived without waiting.
    pub fn bytes_now(&mut self) -> &[u8] {
        while let Ok(chunk) = self.chunks.try_recv() {
            self.bytes.extend_from_slice(&chunk);
        }
        &self.bytes
    }

    /// Takes in one more chunk, or notes the end of the pipe; fails the test at `deadline`.
    #[track_caller]
    fn receive(&mut self, deadline: Instant, waiting_for: &str) {
        let timeout = deadline.saturating_duration_since(Instant::now());
        match self.chunks.recv_timeout(timeout) {
            Ok(chunk) => self.bytes.extend_from_slice(&chunk),
            Err(RecvTimeoutError::Disconnected) => self.ended = true,
            Err(RecvTimeoutError::Timeout) => panic!(
                "waited {} s for {waiting_for} on {}, in vain; it sent:\n{}",
                deadline_duration().as_secs(),
                self.what,
                String::from_utf8_lossy(&self.bytes)
            ),
        }
    }

    /// Waits until `size` bytes in all have arrived; false if the pipe ended first.
    #[track_caller]
    pub fn wait_bytes(&mut self, size: usize) -> bool {
        let deadline = deadline();
        while self.bytes.len() < size && !self.ended {
            self.receive(deadline, &format!("{size} bytes"));
        }
        self.bytes.len() >= size
    }

    /// The next line, without its newline; `None` at the end of the pipe.
    #[track_caller]
    pub fn line(&mut self) -> Option<String> {
        let deadline = deadline();
        loop {
            let rest = &self.bytes[self.consumed..];
            if let Some(at) = rest.iter().position(|&byte| byte == b'\n') {
                let line = String::from_utf8_lossy(&rest[..at]).into_owned();
                self.consumed += at + 1;
                return Some(line);
            }
            if self.ended {
                if rest.is_empty() {
                    return None;
                }
                let line = String::from_utf8_lossy(rest).into_owned();
                self.consumed = self.bytes.len();
                return Some(line);
            }
            self.receive(deadline, "a line");
        }
    }

    /// Waits for the end of the pipe and returns every byte it carried.
    #[track_caller]
    pub fn wait_end(&mut self) -> &[u8] {
        let deadline = deadline();
        while !self.ended {
            self.receive(deadline, "the end");
        }
        &self.bytes
    }
}

/// Runs `command` to its end with `stdin` as its input, and returns its status and output, as
/// `Command::output` does; fails the test if it does not end by the deadline. Errors only if
/// the command cannot start.
#[track_caller]
pub fn output(command: &mut Command, stdin: &[u8], what: &str) -> std::io::Result<Output> {
    command.stdin(Stdio::piped());
    let mut running = output_start(command, what)?;
    let mut input = running.child.stdin.take().expect("stdin is piped");
    let stdin = stdin.to_vec();
    // On a thread: a child that stops reading must not block the test before its deadline.
    // An error (the child exited without reading everything) shows in its status and output.
    std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    output_wait(running, what)
}

/// Like [`output`], with a file as stdin: all of its input is ready at once, whatever the
/// machine's load (a pipe fed by a thread may run dry for a moment on a busy machine).
#[track_caller]
pub fn output_from_file(
    command: &mut Command,
    stdin: std::fs::File,
    what: &str,
) -> std::io::Result<Output> {
    command.stdin(Stdio::from(stdin));
    let running = output_start(command, what)?;
    output_wait(running, what)
}

fn output_start(command: &mut Command, what: &str) -> std::io::Result<Running> {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    Running::start(command, what)
}

#[track_caller]
fn output_wait(mut running: Running, what: &str) -> std::io::Result<Output> {
    let (mut stdout, mut stderr) = (running.stdout(), running.stderr());
    let Some(status) = running.wait_or_kill() else {
        panic!(
            "{what} did not exit within {} s; killed it\nstdout:\n{}\nstderr:\n{}",
            deadline_duration().as_secs(),
            String::from_utf8_lossy(stdout.bytes_now()),
            String::from_utf8_lossy(stderr.bytes_now())
        );
    };
    Ok(Output {
        status,
        stdout: stdout.wait_end().to_vec(),
        stderr: stderr.wait_end().to_vec(),
    })
}
