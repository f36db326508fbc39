//! The NTP service as clocks use it: chrony measures sockit (plain NTP and NTS), ntpsec's
//! ntpdig queries it, and `sockit time --ntp` agrees with chrony about a chronyd server.
//!
//! chronyd runs in `-Q` mode (measure once and print, never touch the clock), with its
//! command port off and its files in the test's temp dir.

use crate::common::{sockit, SOCKIT};
use sockit_testkit::{
    peer,
    process::{run, stderr, stdout},
    serve::Serve,
};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

/// chronyd, or a failure naming the package to install.
fn chronyd() -> PathBuf {
    peer::require("chronyd", "chrony")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs `chronyd -Q` with `sources` (config lines) and returns the offset it measured:
/// "System clock wrong by X seconds" means the local clock minus the source's time is X.
fn chrony_measure(dir: &Path, sources: &str) -> f64 {
    chrony_try_measure(dir, sources)
        .unwrap_or_else(|text| panic!("chronyd measured nothing:\n{text}"))
}

/// [`chrony_measure`], or everything chronyd printed when it measured nothing.
fn chrony_try_measure(dir: &Path, sources: &str) -> Result<f64, String> {
    let conf = dir.join("measure.conf");
    std::fs::write(
        &conf,
        format!(
            "{sources}\ncmdport 0\npidfile {pid}\nntsdumpdir {dir}\n",
            pid = dir.join("measure.pid").display(),
            dir = dir.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(chronyd());
    cmd.arg("-Q").arg("-f").arg(&conf).args(["-t", "30"]);
    if is_root() {
        cmd.args(["-u", "root"]);
    }
    let o = run(&mut cmd, b"", LIMIT);
    let text = format!("{}{}", stdout(&o), stderr(&o));
    text.lines()
        .find_map(|l| {
            let rest = l.split("System clock wrong by ").nth(1)?;
            rest.split_whitespace().next()?.parse::<f64>().ok()
        })
        .ok_or(text)
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':').unwrap().1.parse().unwrap()
}

#[test]
fn chrony_measures_sockit_within_a_millisecond() {
    let s = Serve::start(SOCKIT, &["--only", "ntp"]);
    let port = port_of(&s.addr("ntp", "udp"));
    let offset = chrony_measure(
        s.dir.path(),
        &format!("server 127.0.0.1 port {port} iburst minpoll -4 maxpoll -4"),
    );
    assert!(
        offset.abs() < 0.001,
        "chrony measured sockit {offset} s off"
    );
}

#[test]
fn chrony_measures_sockit_over_nts() {
    let s = Serve::start(SOCKIT, &["--only", "ntp", "--tls"]);
    let ke_port = port_of(&s.addr("ntp", "tls"));
    let cert = s.dir.path().join("root/state/tls/cert.pem");
    assert!(cert.exists(), "no certificate at {}", cert.display());
    let offset = chrony_measure(
        s.dir.path(),
        &format!(
            "server 127.0.0.1 iburst nts ntsport {ke_port} minpoll -4 maxpoll -4\nntstrustedcerts {}",
            cert.display()
        ),
    );
    assert!(
        offset.abs() < 0.001,
        "chrony measured sockit over NTS {offset} s off"
    );
    // The measurement was NTS's: trusting another certificate, chrony gets no time.
    let other = tempfile::tempdir().unwrap();
    let (_, _) = other_certificate(other.path());
    let refused = chrony_try_measure(
        other.path(),
        &format!(
            "server 127.0.0.1 iburst nts ntsport {ke_port} minpoll -4 maxpoll -4\nntstrustedcerts {}",
            other.path().join("cert.pem").display()
        ),
    );
    let text = refused
        .expect_err("chrony measured sockit through NTS although it trusted another certificate");
    assert!(
        text.contains("certificate"),
        "chrony failed for another reason than the certificate:\n{text}"
    );
}

/// A self-signed certificate for 127.0.0.1 in `dir` (cert.pem), made by `openssl`.
fn other_certificate(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let o = run(
        Command::new(peer::require("openssl", "openssl"))
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert),
        b"",
        LIMIT,
    );
    assert!(o.status.success(), "openssl: {}", stderr(&o));
    (cert, key)
}

#[test]
fn ntpdig_queries_sockit() {
    let ntpdig = peer::require("ntpdig", "ntpsec-ntpdate");
    assert!(
        is_root(),
        "ntpdig only speaks to port 123, which needs root: run the tests as root"
    );
    // A loopback address of its own, so port 123 is free whatever else the host runs.
    let s = Serve::start(
        SOCKIT,
        &["--only", "ntp", "--bind", "127.3.2.1", "--port", "ntp=123"],
    );
    assert_eq!(s.addr("ntp", "udp"), "127.3.2.1:123");
    let o = run(
        Command::new(&ntpdig).args(["-j", "-t", "5", "127.3.2.1"]),
        b"",
        LIMIT,
    );
    assert!(o.status.success(), "ntpdig failed: {o:?}");
    let report: serde_json::Value = serde_json::from_str(stdout(&o).trim())
        .unwrap_or_else(|e| panic!("ntpdig printed no JSON ({e}): {}", stdout(&o)));
    let offset = report["offset"]
        .as_f64()
        .expect("offset in ntpdig's report");
    assert!(offset.abs() < 0.01, "ntpdig: offset {offset}: {report}");
    assert_eq!(report["stratum"], 10, "local stratum expected: {report}");
}

/// A chronyd serving NTP on a free UDP port of 127.0.0.1 (its clock untouched).
struct ChronyServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl ChronyServer {
    fn start() -> ChronyServer {
        let dir = tempfile::tempdir().unwrap();
        // chronyd cannot report the port it bound, so take a free one and hand it over.
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = dir.path().join("server.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 10\ncmdport 0\npidfile {}\n",
                dir.path().join("server.pid").display()
            ),
        )
        .unwrap();
        let mut cmd = Command::new(chronyd());
        cmd.arg("-d").arg("-x").arg("-f").arg(&conf);
        if is_root() {
            cmd.args(["-u", "root"]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        ChronyServer {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for ChronyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sockit_time_json(args: &[&str]) -> serde_json::Value {
    let o = run(sockit().arg("--json").args(args), b"", LIMIT);
    assert!(o.status.success(), "sockit {args:?}: {}", stderr(&o));
    serde_json::from_str(stdout(&o).trim()).unwrap()
}

#[test]
fn sockit_time_ntp_agrees_with_chrony_about_chronyd() {
    let server = ChronyServer::start();
    let addr = format!("127.0.0.1:{}", server.port);
    // Readiness: the client's own retries (bounded by its total deadline) wait for
    // chronyd's socket; no sleep.
    let ours = sockit_time_json(&["time", "--ntp", "--server", &addr]);
    let dir = tempfile::tempdir().unwrap();
    let theirs = chrony_measure(
        dir.path(),
        &format!(
            "server 127.0.0.1 port {} iburst minpoll -4 maxpoll -4",
            server.port
        ),
    );
    let offset = ours["offset_us"].as_f64().expect("offset_us") / 1e6;
    assert_eq!(ours["stratum"], 10, "{ours}");
    // chrony reports local minus server; sockit reports server minus local.
    assert!(
        (offset + theirs).abs() < 0.001,
        "sockit says the server is {offset} s ahead, chrony says the local clock is {theirs} s off"
    );
}

#[test]
fn sockit_time_ntp_and_nts_against_sockit() {
    let mut s = Serve::start(SOCKIT, &["--only", "ntp", "--tls"]);
    let fp = common_fingerprint(&mut s);
    let plain = sockit_time_json(&["time", "--ntp", "--server", &s.addr("ntp", "udp")]);
    assert_eq!(plain["stratum"], 10, "{plain}");
    assert!(
        plain["offset_us"].as_f64().unwrap().abs() < 1000.0,
        "{plain}"
    );
    assert!(plain["delay_us"].as_f64().unwrap() >= 0.0, "{plain}");
    let nts = sockit_time_json(&[
        "--tls",
        "--fingerprint",
        &fp,
        "time",
        "--nts",
        "--server",
        &s.addr("ntp", "tls"),
    ]);
    assert_eq!(nts["nts"], true, "{nts}");
    assert!(nts["offset_us"].as_f64().unwrap().abs() < 1000.0, "{nts}");
}

fn common_fingerprint(s: &mut Serve) -> String {
    use std::io::{BufRead, BufReader};
    let out = s.child.stdout.take().unwrap();
    for line in BufReader::new(out).lines() {
        let line = line.unwrap();
        if let Some(fp) = line.strip_prefix("TLS certificate fingerprint: ") {
            return fp.trim().to_owned();
        }
    }
    panic!("no fingerprint line in the serve table");
}
