//! Behaviour the public IRC server conformance suite checks and that InspIRCd and Ergo
//! share: an empty realname is refused, an unknown command word is answered 421 (labeled
//! when asked), and a nick's change of case is no MONITOR event.

use crate::common::{config, start, tags, Raw};

#[tokio::test]
async fn an_empty_realname_is_461() {
    let s = start(config()).await;
    let mut c = Raw::connect(s.addr).await;
    c.send("NICK empty").await;
    c.send("USER empty 0 * :").await;
    let m = c.until(|m| m.command == "461" || m.command == "001").await;
    assert_eq!(m.command, "461", "{m}");
    assert_eq!(m.params[1], "USER");
    // A real name then completes the registration.
    c.send("USER empty 0 * :Empty Realname").await;
    c.until_cmd("001").await;
}

#[tokio::test]
async fn unknown_command_words_get_421_labeled_when_asked() {
    let s = start(config()).await;
    let mut c = Raw::register_with(s.addr, "lab", "labeled-response").await;
    c.send("NONEXISTENT_COMMAND x").await;
    let m = c.until_cmd("421").await;
    assert_eq!(m.params[1], "NONEXISTENT_COMMAND", "{m}");
    c.send("@label=abc NO-SUCH-THING").await;
    let m = c.until_cmd("421").await;
    assert_eq!(m.params[1], "NO-SUCH-THING", "{m}");
    assert_eq!(tags(&m).get("label"), Some("abc"), "{m}");
}

#[tokio::test]
async fn monitor_ignores_a_change_of_case_but_sees_a_rename() {
    let s = start(config()).await;
    let mut watcher = Raw::register(s.addr, "watcher").await;
    let mut qux = Raw::register(s.addr, "qux").await;
    watcher.send("MONITOR + qux").await;
    watcher.until_cmd("730").await;
    qux.send("NICK QUX").await;
    qux.until_cmd("NICK").await;
    // A PING's answer comes after anything the case change would have caused.
    watcher.send("PING :fence").await;
    let next = watcher
        .until(|m| m.command == "PONG" || m.command == "730" || m.command == "731")
        .await;
    assert_eq!(next.command, "PONG", "case change reported: {next}");
    qux.send("NICK other").await;
    let gone = watcher.until_cmd("731").await;
    assert_eq!(gone.params[1], "QUX");
}

#[tokio::test]
async fn help_and_helpop_answer_with_704_705_706_or_524() {
    let s = start(config()).await;
    let mut c = Raw::register(s.addr, "helpme").await;
    for command in ["HELP", "HELPOP"] {
        c.send(&format!("{command} privmsg")).await;
        let start = c.expect("704").await;
        assert_eq!(start.params[1], "privmsg", "{start}");
        assert!(start.params[2].starts_with("PRIVMSG <target>"), "{start}");
        let text = c.expect("705").await;
        assert!(text.params[2].contains("message"), "{text}");
        c.until_cmd("706").await;
        c.send(&format!("{command} THISISNOTACOMMAND")).await;
        let none = c.expect("524").await;
        assert_eq!(none.params[1], "THISISNOTACOMMAND", "{none}");
    }
    c.send("HELP").await;
    c.expect("704").await;
    let index = c.until_cmd("705").await;
    assert!(index.params[2].contains("ADMIN"), "{index}");
    c.until_cmd("706").await;
}
