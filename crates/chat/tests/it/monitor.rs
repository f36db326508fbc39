//! MONITOR (730–734, ISUPPORT MONITOR=100) over raw sockets.

use crate::common::{config, start, Raw};

#[tokio::test]
async fn monitor_online_offline_list_and_limit() {
    let s = start(config()).await;
    let mut w = Raw::register(s.addr, "watch").await;
    let mut here = Raw::register(s.addr, "here").await;
    w.send("MONITOR + here,Later").await;
    assert_eq!(
        w.expect("730").await.params,
        vec!["watch", "here!here@127.0.0.1"]
    );
    assert_eq!(w.expect("731").await.params, vec!["watch", "Later"]);
    let mut later = Raw::register(s.addr, "later").await;
    assert_eq!(
        w.expect("730").await.params,
        vec!["watch", "later!later@127.0.0.1"]
    );
    later.send("NICK renamed").await;
    later.expect("NICK").await;
    assert_eq!(w.expect("731").await.params, vec!["watch", "later"]);
    later.send("NICK later").await;
    later.expect("NICK").await;
    assert_eq!(
        w.expect("730").await.param(1),
        Some("later!later@127.0.0.1")
    );
    here.send("QUIT").await;
    here.until_closed().await;
    assert_eq!(w.expect("731").await.params, vec!["watch", "here"]);
    w.send("MONITOR L").await;
    assert_eq!(w.expect("732").await.params, vec!["watch", "here,Later"]);
    assert_eq!(
        w.expect("733").await.params,
        vec!["watch", "End of MONITOR list"]
    );
    w.send("MONITOR S").await;
    assert_eq!(
        w.expect("730").await.param(1),
        Some("later!later@127.0.0.1")
    );
    assert_eq!(w.expect("731").await.param(1), Some("here"));
    w.send("MONITOR - here").await;
    w.send("MONITOR L").await;
    assert_eq!(w.expect("732").await.param(1), Some("Later"));
    w.expect("733").await;
    w.send("MONITOR C").await;
    w.send("MONITOR L").await;
    w.expect("733").await;
    // Cleared: nothing more about `later`.
    later.send("QUIT").await;
    later.until_closed().await;
    assert!(w.sync("c").await.is_empty());

    let many: Vec<String> = (0..101).map(|i| format!("n{i}")).collect();
    w.send(&format!("MONITOR + {}", many[..100].join(",")))
        .await;
    let mut offline = 0;
    for _ in 0..100 {
        let m = w.msg().await;
        assert_eq!(m.command, "731");
        offline += m.params[1].split(',').count();
        if offline == 100 {
            break;
        }
    }
    assert_eq!(offline, 100);
    w.send("MONITOR + n100,n0").await;
    assert_eq!(
        w.expect("734").await.params,
        vec!["watch", "100", "n100", "Monitor list is full"]
    );
    assert_eq!(w.expect("731").await.params, vec!["watch", "n0"]);
    w.send("MONITOR").await;
    w.expect("461").await;
}
