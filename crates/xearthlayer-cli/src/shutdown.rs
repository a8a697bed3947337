//! How the serving commands are stopped. SIGINT (Ctrl-C), SIGTERM and
//! SIGHUP (the terminal was closed, an SSH session dropped) each start the
//! orderly stop: unmount, flush the disk cache, exit. A mount left behind
//! by a process that died would break X-Plane ("Transport endpoint is not
//! connected"), so none of them may kill the process outright.
//!
//! After SIGHUP the terminal is gone, and every write to it fails (a
//! `println!` would panic halfway through the stop): stdout and stderr are
//! pointed at `/dev/null` then, and the log file keeps the record.
//!
//! A second signal while the orderly stop runs (an unmount waiting for busy
//! files, a slow flush) is not swallowed: it detaches the mounts lazily at
//! once and exits, so nobody needs `kill -9` (which would leave the mounts).

use std::path::PathBuf;

use tokio::signal::unix::{signal, Signal, SignalKind};

/// The stop signals, handled from the moment [`Signals::install`] returns.
pub struct Signals {
    /// `None` when the handlers could not be installed: then nothing stops
    /// us but SIGKILL, as before any handler.
    handlers: Option<[(Signal, &'static str); 3]>,
}

impl Signals {
    /// Installs the handlers now, not at the first poll: from then on a
    /// signal waits for us instead of killing us with a mount half made.
    pub fn install() -> Signals {
        let handler = |kind: SignalKind, name: &'static str| signal(kind).map(|s| (s, name));
        let handlers = (|| {
            Ok::<_, std::io::Error>([
                handler(SignalKind::interrupt(), "SIGINT")?,
                handler(SignalKind::terminate(), "SIGTERM")?,
                handler(SignalKind::hangup(), "SIGHUP")?,
            ])
        })();
        if let Err(e) = &handlers {
            tracing::warn!(error = %e, "cannot handle stop signals");
        }
        Signals {
            handlers: handlers.ok(),
        }
    }

    /// The next stop signal, named. Cancel-safe. After SIGHUP, output goes
    /// to `/dev/null` (see the module docs).
    pub async fn next(&mut self) -> &'static str {
        let Some([(int, a), (term, b), (hup, c)]) = self.handlers.as_mut() else {
            return std::future::pending().await;
        };
        let name = tokio::select! {
            _ = int.recv() => *a,
            _ = term.recv() => *b,
            _ = hup.recv() => *c,
        };
        if name == "SIGHUP" {
            leave_the_terminal();
            tracing::warn!("SIGHUP (terminal closed): unmounting and exiting");
        }
        name
    }

    /// From now on, the next signal detaches `mountpoints` lazily (each
    /// only if it is still an xearthlayer mount) and exits at once with
    /// status 1, whatever the orderly stop is waiting for.
    pub fn force_on_next(mut self, mountpoints: Vec<PathBuf>) {
        tokio::spawn(async move {
            let name = self.next().await;
            tracing::warn!("{name} again: detaching the mounts without waiting");
            for mountpoint in &mountpoints {
                if let Err(e) = xearthlayer::fuse::detach_now(mountpoint) {
                    tracing::warn!(mountpoint = %mountpoint.display(), error = %e, "could not detach");
                }
            }
            say(&format!(
                "{name} again: detached {} mounts without waiting; exiting",
                mountpoints.len()
            ));
            std::process::exit(1);
        });
    }
}

/// Resolves on the first stop signal, naming it (see [`Signals::install`]).
pub fn shutdown_signal() -> impl std::future::Future<Output = &'static str> {
    let mut signals = Signals::install();
    async move { signals.next().await }
}

/// Prints a line on stdout, ignoring a closed terminal.
fn say(line: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Points stdout and stderr at `/dev/null` where they are a terminal (a
/// character device); pipes and files are left alone, they still work.
fn leave_the_terminal() {
    use std::os::fd::AsRawFd as _;
    let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") else {
        return;
    };
    for fd in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: fstat of a descriptor number into a buffer of the right
        // type; dup2 of a descriptor we own onto a standard one.
        unsafe {
            if libc::fstat(fd, st.as_mut_ptr()) == 0
                && st.assume_init().st_mode & libc::S_IFMT == libc::S_IFCHR
            {
                libc::dup2(null.as_raw_fd(), fd);
            }
        }
    }
}
