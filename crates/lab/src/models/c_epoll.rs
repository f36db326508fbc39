//! `c-epoll`: the reference. An edge-triggered epoll echo loop written in C
//! (`crates/lab/c/echo_epoll.c`, compiled by the build script with the `cc` crate) with
//! no allocation per request: the practical ceiling for a single-threaded server on
//! this kernel, which reports compare every other model to.

use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::raw::c_int;

use crate::error::{LabError, Result};
use crate::models::run_loops;
use crate::shutdown::{Shutdown, WakePipe};

extern "C" {
    /// Serves echo on the non-blocking `listen_fd` until `wake_fd` is readable; closes
    /// every connection it accepted (never the two descriptors it was given). Returns 0,
    /// or -errno when epoll cannot be set up or fails.
    fn sockit_c_epoll_serve(listen_fd: c_int, wake_fd: c_int) -> c_int;
}

/// Runs `workers` C event loops until `shutdown` triggers.
///
/// # Errors
/// When epoll or the wake pipe cannot be created.
pub fn serve(listener: TcpListener, workers: usize, shutdown: &Shutdown) -> Result<()> {
    run_loops(listener, workers, shutdown, one_loop)
}

fn one_loop(listener: TcpListener, shutdown: &Shutdown) -> Result<()> {
    let wake = WakePipe::new(shutdown).map_err(|e| LabError::io("wake pipe", e))?;
    // SAFETY: both descriptors are open and stay open for the whole call (`listener`
    // and `wake` outlive it); the C loop only reads from them and closes neither.
    let rc = unsafe { sockit_c_epoll_serve(listener.as_raw_fd(), wake.read_fd()) };
    if rc < 0 {
        return Err(LabError::io(
            "c-epoll loop",
            std::io::Error::from_raw_os_error(-rc),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    /// The build script needs nothing but the checked-in source and a C compiler: the
    /// file compiles alone, copied into an empty directory, with warnings as errors.
    #[test]
    fn source_compiles_alone_with_warnings_as_errors() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("c/echo_epoll.c");
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("echo_epoll.c");
        std::fs::copy(&src, &copy).unwrap();
        let out = Command::new("cc")
            .args(["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-c"])
            .arg(&copy)
            .arg("-o")
            .arg(dir.path().join("echo_epoll.o"))
            .current_dir(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run cc: {e} (apt-get install gcc)"));
        assert!(
            out.status.success(),
            "cc failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(dir.path().join("echo_epoll.o").exists());
    }
}
