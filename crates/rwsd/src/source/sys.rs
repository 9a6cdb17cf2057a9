//! The system calls the daemon's threads need beyond `std`, each behind a safe function:
//! waiting for a descriptor to become readable with a timeout (`poll`), a private copy of
//! standard input's descriptor (`dup`), so a reader can poll it without `std`'s buffered `Stdin`
//! hiding data from `poll`, and moving the calling thread to the idle scheduling class
//! (background work that must never take a core from a frame).

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// Waits until `fd` is readable, has hung up or failed, or `timeout` passes; `Ok(false)` on
/// timeout. Retries when a signal interrupts the wait.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: `p` is one valid, exclusively borrowed pollfd and the count says 1; `fd` is
        // open for the duration of the borrow.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r >= 0 {
            return Ok(r > 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A descriptor of this process's standard input that the returned file owns (closing it
/// leaves fd 0 open).
pub fn dup_stdin() -> io::Result<File> {
    // SAFETY: `dup` takes no pointers; it returns a new descriptor or -1.
    let fd = unsafe { libc::dup(libc::STDIN_FILENO) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by `dup`: open, and owned by nothing else.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Puts the calling thread in Linux's `SCHED_IDLE` class: it runs only on a core nothing else
/// wants, so background work (preparing a reload) never preempts the frame thread. Elsewhere,
/// or if refused, the thread keeps its priority (returns `false`).
pub fn background_priority() -> bool {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid sched_param for the call's duration; pid 0 is the calling
        // thread.
        unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}
