//! Keepalives with a scripted server (SIPDESK_KEEPALIVE_SECS=5 to keep the test short): over UDP
//! an OPTIONS that gets no answer within its 10 s deadline restarts the registration; over TCP a
//! missing pong counts only once the server has answered a ping.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;
use sipdesk_e2e::scripted_peer::{contact_uri, response, Peer};
use sipdesk_e2e::sipdesk::{add_account, Running};

fn state(id: i64, state: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == "registration" && v["account_id"] == id && v["state"] == state
}

const FAST: [(&str, &str); 1] = [("SIPDESK_KEEPALIVE_SECS", "5")];

#[test]
fn an_unanswered_udp_keepalive_restarts_the_registration() {
    let mut peer = Peer::new();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("desk.db");
    let id = add_account(
        &db,
        &[
            "--host",
            "127.0.0.1",
            "--port",
            &peer.port().to_string(),
            "--user",
            "1001",
            "--interval",
            "3600",
            "--activate",
        ],
        "pw",
    );
    let mut run = Running::start(&db, &[], &FAST);
    let reg = peer.register(|_| true);
    peer.reply(&reg, "200 OK", &[&format!("Contact: <{}>;expires=3600", contact_uri(&reg))]);
    run.wait_for("registered", Duration::from_secs(5), state(id, "registered"));
    let first = peer.request("OPTIONS", Duration::from_secs(8)).expect("a keepalive OPTIONS within the period");
    peer.reply(&first, "200 OK", &[]);
    let second = peer.request("OPTIONS", Duration::from_secs(8)).expect("the next keepalive");
    let unanswered = Instant::now();
    drop(second); // Never answered (nor its retransmissions).
    let failed = run.wait_next("failed", Duration::from_secs(15), state(id, "failed"));
    assert_eq!(failed["reason"], "timeout");
    let waited = unanswered.elapsed();
    assert!(waited >= Duration::from_secs(9), "gave up after {waited:?}, before the 10 s deadline");
    // It registers again at once, from the same port.
    let again = peer.register(|r| r.contains("Expires: 3600"));
    assert_eq!(contact_uri(&again), contact_uri(&reg), "the Contact stays the same");
    peer.reply(&again, "200 OK", &[&format!("Contact: <{}>;expires=3600", contact_uri(&again))]);
    run.wait_next("registered again", Duration::from_secs(5), state(id, "registered"));
}

/// Reads from `conn` until a REGISTER arrives; answers it with 200 (Contact expires 3600).
fn answer_register(conn: &mut TcpStream) {
    let mut buf = vec![0u8; 8192];
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "closed before a REGISTER");
        got.extend_from_slice(&buf[..n]);
    }
    let req = String::from_utf8_lossy(&got).into_owned();
    let ok = response(&req, "200 OK", &[&format!("Contact: <{}>;expires=3600", contact_uri(&req))]);
    conn.write_all(ok.as_bytes()).unwrap();
}

/// Waits for the next CRLFCRLF ping on `conn`.
fn ping(conn: &mut TcpStream, within: Duration) {
    conn.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 64];
    let n = conn.read(&mut buf).expect("a ping");
    assert_eq!(&buf[..n], b"\r\n\r\n");
}

#[test]
fn tcp_pings_count_a_missing_pong_only_after_the_server_ponged() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("desk.db");
    let id = add_account(
        &db,
        &[
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--user",
            "1001",
            "--protocol",
            "tcp",
            "--interval",
            "3600",
            "--activate",
        ],
        "pw",
    );
    let mut run = Running::start(&db, &[], &FAST);
    let (mut conn, _) = listener.accept().unwrap();
    answer_register(&mut conn);
    run.wait_for("registered", Duration::from_secs(5), state(id, "registered"));
    // Two pings without a pong: a server that never pongs is not judged by it.
    ping(&mut conn, Duration::from_secs(8));
    ping(&mut conn, Duration::from_secs(8));
    conn.write_all(b"\r\n").unwrap();
    assert!(!run.seen().iter().any(state(id, "failed")), "no failure before the server ever ponged");
    // It has ponged once: now a ping left unanswered ends the flow at the next tick.
    ping(&mut conn, Duration::from_secs(8));
    let failed = run.wait_next("failed", Duration::from_secs(10), state(id, "failed"));
    assert_eq!(failed["reason"], "timeout");
    // A new connection and a new REGISTER follow at once.
    listener.set_nonblocking(false).unwrap();
    let (mut conn2, _) = listener.accept().unwrap();
    answer_register(&mut conn2);
    run.wait_next("registered again", Duration::from_secs(5), state(id, "registered"));
}
