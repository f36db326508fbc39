//! The README's `console` blocks, run as a user would type them, so the Tour cannot go
//! stale. Rules (docs/testing.md):
//!
//! - `$ CMD` lines are commands; the lines up to the next `$` are CMD's expected stdout.
//!   `text` and `sh` blocks are illustrations and are not run.
//! - `$ sockit serve ARGS` starts a server (on free ports, in a scratch data root) and
//!   checks the table it prints; with a trailing `&` it replaces the running server
//!   silently. Every other `$ sockit SUB` runs with `SOCKIT_SERVER` set to the running
//!   server's address for SUB's service, `HOME` set to a scratch directory (`~` expands
//!   to it), and `echo TEXT | ` giving its stdin.
//! - A line `...` stands for any lines. Lines are compared after masking what differs
//!   from run to run: runs of whitespace, numbers, absolute paths, day and month names.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::{sockit, SOCKIT};
use sockit_testkit::process::{run, stderr, stdout};
use sockit_testkit::serve::Serve;

const LIMIT: Duration = Duration::from_secs(30);

/// One `$` line of a console block and the output shown under it.
#[derive(Debug)]
struct Step {
    command: String,
    expected: Vec<String>,
}

/// The steps of every `console` block of `markdown`, block by block.
fn console_blocks(markdown: &str) -> Vec<Vec<Step>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<Step>> = None;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            match current.take() {
                Some(steps) => blocks.push(steps),
                None if info.trim() == "console" => current = Some(Vec::new()),
                None => {}
            }
            continue;
        }
        let Some(steps) = current.as_mut() else {
            continue;
        };
        if let Some(cmd) = trimmed.strip_prefix("$ ") {
            steps.push(Step {
                command: cmd.to_owned(),
                expected: Vec::new(),
            });
        } else if let Some(step) = steps.last_mut() {
            step.expected.push(trimmed.to_owned());
        }
    }
    blocks
}

/// The command without its trailing `# comment` (two or more spaces, then `#`).
fn strip_comment(cmd: &str) -> &str {
    match cmd.find("  #") {
        Some(i) => cmd[..i].trim_end(),
        None => cmd.trim_end(),
    }
}

/// Shell-like words: whitespace-separated, `'...'` quotes kept together.
fn words(cmd: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in cmd.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(word);
    }
    out
}

/// A line with what differs between runs masked.
fn mask(line: &str) -> String {
    const NAMES: [&str; 19] = [
        "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "Jan", "Feb", "Mar", "Apr", "May", "Jun",
        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut out = Vec::new();
    for word in line.split_whitespace() {
        let mut w = String::new();
        let mut chars = word.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '/' && w.chars().last().is_none_or(|p| p == '(' || p == '=') {
                // An absolute path: up to the end of the word (trailing punctuation kept).
                let rest: String = std::iter::once(c).chain(chars.by_ref()).collect();
                let keep = rest.trim_end_matches([';', ',', ')', '.']);
                w.push_str("<path>");
                w.push_str(&rest[keep.len()..]);
                break;
            }
            if c.is_ascii_digit()
                || (matches!(c, '+' | '-') && chars.peek().is_some_and(char::is_ascii_digit))
            {
                while chars
                    .peek()
                    .is_some_and(|d| d.is_ascii_digit() || *d == '.')
                {
                    chars.next();
                }
                w.push('#');
            } else {
                w.push(c);
            }
        }
        out.push(if NAMES.contains(&w.as_str()) {
            "<name>".to_owned()
        } else {
            w
        });
    }
    out.join(" ")
}

/// Whether `actual` matches `expected`, where an `...` line matches any lines.
fn matches(expected: &[String], actual: &[String]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((e, rest)) if e == "..." => (0..=actual.len()).any(|k| matches(rest, &actual[k..])),
        Some((e, rest)) => actual
            .split_first()
            .is_some_and(|(a, more)| mask(e) == mask(a) && matches(rest, more)),
    }
}

fn assert_output(step: &Step, actual: &str) {
    let expected: Vec<String> = step
        .expected
        .iter()
        .filter(|l| !l.is_empty())
        .cloned()
        .collect();
    let actual: Vec<String> = actual.lines().map(str::to_owned).collect();
    assert!(
        matches(&expected, &actual),
        "README: `$ {}` shows\n{}\nbut it printed\n{}",
        step.command,
        expected.join("\n"),
        actual.join("\n")
    );
}

/// The service (and protocol) a client subcommand talks to.
fn service_of(args: &[String]) -> (&'static str, &'static str) {
    let udp = args.iter().any(|a| a == "--udp");
    let proto = if udp { "udp" } else { "tcp" };
    match args.first().map(String::as_str) {
        Some("greet") => ("greet", "tcp"),
        Some("echo") => ("echo", proto),
        Some("daytime") => ("daytime", proto),
        Some("time") if args.iter().any(|a| a == "--ntp") => ("ntp", "udp"),
        Some("time") => ("time", proto),
        Some("chat") if udp => ("udp-chat", "udp"),
        Some("chat") => ("chat", "tcp"),
        Some("read") => ("reader", "http"),
        Some("tftp") => ("tftp", "udp"),
        _ => ("framed", "tcp"),
    }
}

/// A running server and the lines it printed before "Ctrl-C or SIGTERM stops".
fn start_server(home: &Path, args: &[String]) -> (Serve, Vec<String>) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut serve = Serve::start_in(SOCKIT, &home.join("root"), &args);
    let out = serve.child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut lines = Vec::new();
    loop {
        let line = rx
            .recv_timeout(LIMIT)
            .unwrap_or_else(|_| panic!("serve printed no `Ctrl-C` line; got {lines:#?}"));
        let last = line.starts_with("Ctrl-C or SIGTERM stops");
        lines.push(line);
        if last {
            return (serve, lines);
        }
    }
}

fn expand_home(word: &str, home: &Path) -> String {
    match word.strip_prefix("~/") {
        Some(rest) => home.join(rest).display().to_string(),
        None => word.to_owned(),
    }
}

fn run_steps(steps: &[Step], home: &Path) {
    let mut server: Option<Serve> = None;
    for step in steps {
        let mut cmd = strip_comment(&step.command).to_owned();
        let mut stdin = Vec::new();
        if let Some((left, right)) = cmd.split_once(" | ") {
            let text = left
                .strip_prefix("echo ")
                .unwrap_or_else(|| panic!("README pipes from `{left}`: only `echo TEXT |` is run"));
            stdin = format!("{}\n", text.trim()).into_bytes();
            cmd = right.to_owned();
        }
        let background = cmd.ends_with(" &");
        let cmd = cmd.trim_end_matches(" &");
        let mut args: Vec<String> = words(cmd).iter().map(|w| expand_home(w, home)).collect();
        assert_eq!(
            args.first().map(String::as_str),
            Some("sockit"),
            "README runs `{cmd}`"
        );
        args.remove(0);
        if args.first().map(String::as_str) == Some("serve") {
            drop(server.take());
            let (s, printed) = start_server(home, &args[1..]);
            if !background {
                assert_output(step, &printed.join("\n"));
            }
            server = Some(s);
            continue;
        }
        let mut command = sockit();
        command.env("HOME", home).args(&args);
        if let Some(s) = &server {
            let (service, proto) = service_of(&args);
            command.env("SOCKIT_SERVER", s.addr(service, proto));
        }
        let o = run(&mut command, &stdin, LIMIT);
        assert!(
            o.status.success(),
            "README: `$ {cmd}` failed: {}",
            stderr(&o)
        );
        assert_output(step, &stdout(&o));
    }
}

fn readme() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_console_block_of_the_readme_runs_as_shown() {
    let blocks = console_blocks(&readme());
    assert!(
        blocks.len() >= 2,
        "the README has {} console blocks",
        blocks.len()
    );
    // The Tour is one session: the server started in one block serves the next ones.
    let steps: Vec<Step> = blocks.into_iter().flatten().collect();
    let home = tempfile::tempdir().unwrap();
    run_steps(&steps, home.path());
}

#[test]
fn masking_keeps_words_and_hides_what_changes() {
    assert_eq!(
        mask("Wed Nov 25 16:17:53 2026"),
        mask("Thu Dec  2 04:11:39 2026")
    );
    assert_eq!(mask("offset: -0.132 s (x)"), mask("offset:   +0.2 s (x)"));
    assert_eq!(
        mask("data root /home/me/.local/share/sockit; no key"),
        mask("data root /tmp/x/root; no key")
    );
    assert_ne!(mask("pong 1: time=0.2 ms"), mask("ping 1: time=0.2 ms"));
    assert!(matches(
        &["a".into(), "...".into(), "z".into()],
        &["a".into(), "b".into(), "c".into(), "z".into()]
    ));
    assert!(!matches(
        &["a".into(), "z".into()],
        &["a".into(), "b".into(), "z".into()]
    ));
    assert_eq!(
        words("daytime --udp --format '%H:%M'"),
        ["daytime", "--udp", "--format", "%H:%M"]
    );
}
