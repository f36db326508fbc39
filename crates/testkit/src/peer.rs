//! The external programs interop tests drive, and the one way a run may knowingly do
//! without a kernel feature or privilege (`docs/testing.md`, "No silent skips").
//!
//! A missing peer program always fails its test, naming the Debian package that provides
//! it: `scripts/test.sh` installs every one (its `APT_PEERS` list), and nothing can opt
//! out of them. Only the features of [`SKIPPABLE`] can be skipped, and only when the run
//! lists them in [`SKIP_VAR`].

use std::fmt::Display;
use std::path::PathBuf;

/// The variable that lists what a run knowingly skips, comma-separated.
pub const SKIP_VAR: &str = "SOCKIT_TEST_SKIP";

/// The names [`SKIP_VAR`] may list, each documented in `docs/testing.md` with its test:
/// `netns` (root and `ip`, for network namespaces) and `io-uring` (a kernel that allows
/// io_uring).
pub const SKIPPABLE: &[&str] = &["netns", "io-uring"];

/// Directories searched after `PATH`: Debian puts daemons (in.tftpd, chronyd) in sbin,
/// which an unprivileged user's `PATH` often lacks.
const SBIN: [&str; 3] = ["/usr/sbin", "/sbin", "/usr/local/sbin"];

/// Where `program` is, searching `PATH` and then the sbin directories.
pub fn find(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&paths)
        .chain(SBIN.map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// The path of `program`, or a test failure naming the Debian `package` to install.
#[track_caller]
pub fn require(program: &str, package: &str) -> PathBuf {
    match find(program) {
        Some(path) => path,
        None => panic!("{}", missing_message(program, package)),
    }
}

fn missing_message(program: &str, package: &str) -> String {
    format!(
        "`{program}` is not installed: install the Debian package {package} \
         (`apt-get install {package}`; scripts/test.sh does)"
    )
}

/// Whether the run lists `name` in [`SKIP_VAR`]. `name` must be one of [`SKIPPABLE`].
#[track_caller]
pub fn skip_listed(name: &str) -> bool {
    assert!(
        SKIPPABLE.contains(&name),
        "`{name}` is not a name {SKIP_VAR} may list ({SKIPPABLE:?}): a new one needs its \
         row in docs/testing.md"
    );
    std::env::var(SKIP_VAR).is_ok_and(|v| skip_list_has(&v, name))
}

fn skip_list_has(list: &str, name: &str) -> bool {
    list.split(',').any(|r| r.trim() == name)
}

/// Decides a test whose feature `name` (one of [`SKIPPABLE`]) may be missing: the value
/// when `check` succeeded; `None` when it failed and the run lists `name` in [`SKIP_VAR`]
/// (after printing `SKIPPED because …` on stderr; the test then returns); otherwise a
/// failure with why, and how to skip knowingly.
#[track_caller]
pub fn unless_skipped<T, E: Display>(name: &str, check: Result<T, E>) -> Option<T> {
    match check {
        Ok(value) => Some(value),
        Err(why) if skip_listed(name) => {
            eprintln!("SKIPPED because {SKIP_VAR} lists {name}: {why}");
            None
        }
        Err(why) => panic!("{why}; to skip this test knowingly set {SKIP_VAR}={name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_program_every_system_has() {
        assert!(require("sh", "dash").is_file());
        assert_eq!(find("sockit-no-such-program"), None);
    }

    #[test]
    #[should_panic(expected = "install the Debian package sockit-peer (`apt-get install \
                               sockit-peer`; scripts/test.sh does)")]
    fn a_missing_program_names_its_package() {
        require("sockit-no-such-program", "sockit-peer");
    }

    #[test]
    fn the_skip_list_is_comma_separated_names() {
        assert!(skip_list_has("netns,io-uring", "io-uring"));
        assert!(skip_list_has(" netns , io-uring", "netns"));
        assert!(!skip_list_has("netns", "io-uring"));
        assert!(!skip_list_has("", "netns"));
        assert!(!skip_list_has("netnsx", "netns"));
    }

    #[test]
    #[should_panic(expected = "is not a name SOCKIT_TEST_SKIP may list")]
    fn only_documented_names_can_be_skipped() {
        skip_listed("chromium");
    }

    #[test]
    fn a_feature_that_is_there_is_used() {
        assert_eq!(unless_skipped("netns", Ok::<_, String>(5)), Some(5));
    }
}
