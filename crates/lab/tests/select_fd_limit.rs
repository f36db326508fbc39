//! select(2) cannot represent descriptors >= FD_SETSIZE; the select model must refuse
//! them with a clear error instead of writing past the fd_set.

use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd};

use sockit_lab::{LabError, Shutdown};

#[test]
fn select_refuses_listener_above_fd_setsize() {
    let nofile = sockit_lab::affinity::raise_nofile().unwrap();
    assert!(
        nofile > libc::FD_SETSIZE as u64 + 10,
        "this test needs RLIMIT_NOFILE above {} (hard limit is {nofile})",
        libc::FD_SETSIZE
    );
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: F_DUPFD_CLOEXEC on a valid fd returns a new fd >= the given minimum.
    let big = unsafe {
        libc::fcntl(
            l.as_raw_fd(),
            libc::F_DUPFD_CLOEXEC,
            libc::FD_SETSIZE as i32 + 5,
        )
    };
    assert!(
        big >= libc::FD_SETSIZE as i32,
        "dup failed: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `big` is a fresh descriptor we own.
    let big_listener = unsafe { TcpListener::from_raw_fd(big) };
    let err = sockit_lab::models::select::serve(big_listener, 1, &Shutdown::new()).unwrap_err();
    match &err {
        LabError::FdTooLargeForSelect { fd, limit } => {
            assert_eq!(*fd, big);
            assert_eq!(*limit, libc::FD_SETSIZE);
        }
        other => panic!("wrong error: {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("FD_SETSIZE") && msg.contains("poll or epoll"),
        "{msg}"
    );
}
