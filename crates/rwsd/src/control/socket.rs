//! The control socket's file: where it is bound, how it is published at the configured path
//! only once it accepts connections, how it is taken back when the daemon stops, and what a path
//! already holds ([`inspect`], [`claim`]). Nothing here ever removes a file that is not a socket.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Where the socket for `path` is bound and listens before it is published, and where it is
/// moved when the server stops: beside `path`, named for this process.
fn private_name(path: &Path) -> PathBuf {
    path.with_file_name(format!(".rwsd-{}.sock", std::process::id()))
}

fn is_socket(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

/// Removes `path` only if it is a socket: a config naming a regular file must never delete it.
pub(super) fn remove_socket(path: &Path) {
    if is_socket(path) {
        let _ = std::fs::remove_file(path);
    }
}

/// What is at a socket path, looked at without touching it.
#[derive(Debug, PartialEq, Eq)]
pub enum PathState {
    Free,
    /// A socket nobody answers on (left by a killed daemon): it will be replaced.
    Stale,
    /// Another daemon answers there.
    Listening,
    /// Something that is not a socket: never replaced.
    NotASocket,
}

/// Looks at `path` (`rwsd --check` and [`claim`] both use this).
pub fn inspect(path: &Path) -> PathState {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return PathState::Free;
    };
    if !meta.file_type().is_socket() {
        PathState::NotASocket
    } else if UnixStream::connect(path).is_ok() {
        PathState::Listening
    } else {
        PathState::Stale
    }
}

/// Makes `path` free for binding: nothing there, or a stale socket nobody answers on (removed).
/// Anything else is refused: another daemon listening, or a file that is not a socket.
pub fn claim(path: &Path) -> Result<()> {
    match inspect(path) {
        PathState::Free => Ok(()),
        PathState::NotASocket => bail!(
            "{}: exists and is not a socket; refusing to replace it",
            path.display()
        ),
        PathState::Listening => bail!("{}: another rwsd is listening there", path.display()),
        PathState::Stale => {
            std::fs::remove_file(path).with_context(|| format!("removing stale {}", path.display()))
        }
    }
}

/// Unpublishes the socket at `path` by moving it back to its private name, so that from here a
/// client finds no socket (no daemon) rather than a file that refuses it while the server winds
/// down. Returns where the socket now is, for waking the accept loop and removing it after.
pub(super) fn unpublish(path: &Path) -> PathBuf {
    let private = private_name(path);
    if is_socket(path) && std::fs::rename(path, &private).is_ok() {
        private
    } else {
        path.to_path_buf()
    }
}

/// Binds a listening socket that appears at `path` only once it accepts connections, with
/// its final mode. `bind(2)` creates the file before `listen(2)`, and in between a client is
/// refused and another starting daemon would take the socket for stale and remove it; so the
/// socket is bound under a private name beside `path` and hard-linked into place, which also
/// fails (rather than replaces) if another daemon got there first.
pub(super) fn publish(path: &Path) -> Result<UnixListener> {
    let private = private_name(path);
    remove_socket(&private);
    let listener = UnixListener::bind(&private)
        .with_context(|| format!("binding {} (for {})", private.display(), path.display()))?;
    let placed = std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("chmod {}", private.display()))
        .and_then(|()| {
            std::fs::hard_link(&private, path).with_context(|| {
                format!(
                    "placing the socket at {} (another rwsd may have claimed it)",
                    path.display()
                )
            })
        });
    remove_socket(&private);
    placed.map(|()| listener)
}
