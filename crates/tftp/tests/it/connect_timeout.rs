//! A server that never answers is reported after the client's connect timeout (10 s by
//! default), with how many requests went out, not after the whole retransmission
//! back-off (1 + 2 + 4 + 8 + 16 s). Runs on tokio's paused clock: the wait is exact and
//! takes no real time.

use std::time::Duration;

use sockit_tftp::{client, ClientError, ClientOptions};
use tokio::net::UdpSocket;

#[tokio::test(start_paused = true)]
async fn a_silent_server_is_given_up_at_the_connect_timeout() {
    // A bound socket that reads nothing: requests arrive and are never answered.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server = silent.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opts = ClientOptions::default();
    assert_eq!(opts.connect_timeout, Duration::from_secs(10));
    let started = tokio::time::Instant::now();
    let err = client::get(server, "f", &dir.path().join("f"), &opts, &mut |_| {})
        .await
        .unwrap_err();
    let waited = started.elapsed();
    let ClientError::NoAnswer {
        requests,
        waited: reported,
        ..
    } = err
    else {
        panic!("want NoAnswer, got {err:?}");
    };
    // Requests at 0, 1, 3 and 7 s (intervals 1, 2, 4, then 8 cut to the deadline).
    assert_eq!(requests, 4);
    assert_eq!(reported, Duration::from_secs(10));
    assert_eq!(waited, Duration::from_secs(10));
    assert!(!dir.path().join("f").exists());
    let text = ClientError::NoAnswer {
        server,
        requests,
        waited: reported,
    }
    .to_string();
    assert!(text.contains("within 10.0 s (4 requests sent)"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn retries_still_bound_the_wait_when_they_end_first() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opts = ClientOptions {
        retries: 1,
        ..ClientOptions::default()
    };
    let started = tokio::time::Instant::now();
    let err = client::get(
        silent.local_addr().unwrap(),
        "f",
        &dir.path().join("f"),
        &opts,
        &mut |_| {},
    )
    .await
    .unwrap_err();
    // Two requests, waits of 1 s and 2 s.
    assert!(
        matches!(err, ClientError::NoAnswer { requests: 2, .. }),
        "{err:?}"
    );
    assert_eq!(started.elapsed(), Duration::from_secs(3));
}
