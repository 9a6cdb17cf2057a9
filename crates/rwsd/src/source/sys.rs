//! The system calls the daemon's threads need beyond `std`, each behind a safe function:
//! waiting for a descriptor to become readable with a timeout (`poll`), a private copy of
//! standard input's descriptor (`dup`), so a reader can poll it without `std`'s buffered `Stdin`
//! hiding data from `poll`, moving the calling thread to the idle scheduling class
//! (background work that must never take a core from a frame), and bounding glibc's malloc
//! arenas and handing what a reload freed back to the kernel.

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

/// How many malloc arenas glibc may keep: one. The steady frame loop does not allocate
/// (`benches/frame_loop.rs`), and each thread's cache (tcache) serves small blocks without the
/// arena's lock, so the one shared arena costs the frames nothing measurable.
pub const MALLOC_ARENAS: i32 = 1;

/// Bounds glibc's malloc arenas to [`MALLOC_ARENAS`] for the whole process; call it first
/// thing in `main`, before any thread starts. By default glibc gives threads up to eight
/// arenas per core and keeps what they freed: each SIGHUP's reload thread builds a runtime in
/// an arena of its own, and the resident set crept with reloads though nothing leaked
/// (reloads 30 → 150, the demo model: +1.2 MB with glibc's default arenas, +0.5 MB with two,
/// +0.4 MB with one, of it +0.08 MB after reload 60; docs/reliability.md). `MALLOC_ARENA_MAX` in the environment still wins. Elsewhere (musl,
/// other systems) there is nothing to do; returns whether the bound was set.
pub fn bound_malloc_arenas() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
            return false;
        }
        // SAFETY: mallopt takes two integers and changes a tunable of the allocator; it is
        // called before the process starts threads (see above), as glibc asks.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Hands memory the allocator holds free back to the kernel (glibc's `malloc_trim`, which also
/// releases whole free pages inside the heap, not only at its top). Called once a reload's old
/// model, session and signatures are dropped: building the new set beside the old leaves holes
/// that would otherwise stay resident, and each reload's holes fall in new places, so the
/// resident set climbed a little with every SIGHUP (docs/reliability.md, the soak). Off the
/// frame thread; a no-op elsewhere.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes a size and only returns free memory of the allocator's own.
    unsafe {
        libc::malloc_trim(0);
    }
}
