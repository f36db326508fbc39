//! The list modes +e (348/349) and +I (346/347) beside +b, and `MODES=4` (at most four
//! mode changes with a parameter per MODE command), over raw sockets.

use crate::common::{config, start, Raw};

async fn creator(addr: std::net::SocketAddr, nick: &str, chan: &str) -> Raw {
    let mut c = Raw::register(addr, nick).await;
    c.send(&format!("JOIN {chan}")).await;
    c.until_cmd("366").await;
    c
}

#[tokio::test]
async fn ban_exceptions_and_invite_exceptions() {
    let s = start(config()).await;
    let mut op = creator(s.addr, "op", "#l").await;
    op.send("MODE #l +b *!*@127.0.0.1").await;
    op.until_cmd("MODE").await;
    let mut friend = Raw::register(s.addr, "friend").await;
    friend.send("JOIN #l").await;
    friend.until_cmd("474").await;
    op.send("MODE #l +e friend").await;
    let m = op.until_cmd("MODE").await;
    assert_eq!(m.params, vec!["#l", "+e", "friend!*@*"]);
    friend.send("JOIN #l").await;
    friend.until_cmd("366").await;
    op.send("MODE #l e").await;
    let e = op.until_cmd("348").await;
    assert_eq!(e.params[..3], ["op", "#l", "friend!*@*"]);
    assert_eq!(e.params[3], "op!op@127.0.0.1");
    assert_eq!(
        op.expect("349").await.params,
        vec!["op", "#l", "End of channel exception list"]
    );

    op.send("MODE #l -b *!*@127.0.0.1").await;
    op.until_cmd("MODE").await;
    op.send("MODE #l +i").await;
    op.until_cmd("MODE").await;
    let mut guest = Raw::register(s.addr, "guest").await;
    guest.send("JOIN #l").await;
    guest.until_cmd("473").await;
    op.send("MODE #l +I guest!*@*").await;
    assert_eq!(
        op.until_cmd("MODE").await.params,
        vec!["#l", "+I", "guest!*@*"]
    );
    guest.send("JOIN #l").await;
    guest.until_cmd("366").await;
    op.send("MODE #l I").await;
    assert_eq!(op.until_cmd("346").await.params[2], "guest!*@*");
    assert_eq!(
        op.expect("347").await.params,
        vec!["op", "#l", "End of channel invite list"]
    );
    // Members may read the lists, not change them.
    guest.send("MODE #l +e x").await;
    guest.until_cmd("482").await;
    guest.send("MODE #l beI").await;
    guest.expect("368").await;
    guest.expect("348").await;
    guest.expect("349").await;
    guest.expect("346").await;
    guest.expect("347").await;
    op.send("MODE #l -I guest!*@*").await;
    assert_eq!(
        op.until_cmd("MODE").await.params,
        vec!["#l", "-I", "guest!*@*"]
    );
}

#[tokio::test]
async fn at_most_four_parameter_modes_per_command() {
    let s = start(config()).await;
    let mut op = creator(s.addr, "op", "#m").await;
    op.send("MODE #m +bbbbb a b c d e").await;
    let m = op.until_cmd("MODE").await;
    assert_eq!(
        m.params,
        vec!["#m", "+bbbb", "a!*@*", "b!*@*", "c!*@*", "d!*@*"]
    );
    // Modes without a parameter do not count.
    op.send("MODE #m +imsbbbbb f g h i j").await;
    let m = op.until_cmd("MODE").await;
    assert_eq!(m.params[1], "+imsbbbb");
    assert_eq!(m.params.len(), 6);
    op.send("MODE #m b").await;
    let mut n = 0;
    while op.msg().await.command == "367" {
        n += 1;
    }
    assert_eq!(n, 8);
}
