//! Malformed input from a scripted SIP peer (a test-only server, for bad input only): nothing
//! panics or hangs, each bad message is dropped or answered with a clear log line, and the
//! registration state stays right. Also feeds the RFC 4475 torture messages to a registered desk.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use sipdesk_e2e::scripted_peer::{contact_uri, header, response, Peer};
use sipdesk_e2e::sipdesk::{add_account, Running};

fn state(id: i64, state: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == "registration" && v["account_id"] == id && v["state"] == state
}

fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("desk.db");
    (dir, db)
}

fn account(db: &std::path::Path, port: u16, proto: &str) -> i64 {
    add_account(
        db,
        &[
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--user",
            "1001",
            "--protocol",
            proto,
            "--interval",
            "60",
            "--activate",
        ],
        "pw-1001",
    )
}

#[test]
fn garbage_before_a_good_answer_is_dropped_and_registration_completes() {
    let mut peer = Peer::new();
    let (_d, db) = temp_db();
    let id = account(&db, peer.port(), "udp");
    let mut run = Running::start(&db, &[], &[]);
    let first = peer.register(|_| true);
    let via = header(&first, "Via").to_string();
    // Garbage, a truncated message, an oversized datagram, an unknown branch, no CSeq.
    peer.send(b"\x00\x01\x02 not sip at all \xff\xfe");
    peer.send(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;bra");
    peer.send(&vec![b'A'; 65_000]);
    peer.send(response(&first, "200 OK", &[]).replace("z9hG4bK", "z9hG4bKunknown").as_bytes());
    let no_cseq = response(&first, "401 Unauthorized", &["WWW-Authenticate: Digest realm=\"t\", nonce=\"n0\""])
        .replace(header(&first, "CSeq"), "X-No-CSeq: 1");
    peer.send(no_cseq.as_bytes());
    // A challenge we cannot answer beside one we can: the MD5 one is used.
    peer.reply(
        &first,
        "401 Unauthorized",
        &[
            "WWW-Authenticate: Digest realm=\"bad\", nonce=\"x\", algorithm=SHA-512-256",
            "WWW-Authenticate: Digest realm=\"t\", nonce=\"n1\", qop=\"auth\", algorithm=MD5",
        ],
    );
    let authed = peer.register(|r| r.contains("Authorization:"));
    let auth = header(&authed, "Authorization");
    assert!(
        auth.contains("realm=\"t\"") && auth.contains("algorithm=MD5") && auth.contains("qop=auth, nc=00000001"),
        "{auth}"
    );
    assert!(header(&authed, "Via") != via, "a new transaction has a new branch");
    // A 200 that gives no expiry at all: the interval we asked for is assumed.
    let contact = contact_uri(&authed);
    peer.reply(&authed, "200 OK", &[&format!("Contact: <{contact}>")]);
    let ev = run.wait_for("registered", Duration::from_secs(10), state(id, "registered"));
    assert_eq!(ev["expires"], 60);
    let status = run.command(json!({"id": 1, "cmd": "status"}));
    assert_eq!(status["result"]["accounts"][0]["registration"]["state"], "registered");
    let (code, stderr) = run.terminate(Duration::from_secs(4));
    assert!(code.success(), "{stderr}");
    assert!(stderr.contains("dropped unparseable SIP message"), "{stderr}");
    assert!(stderr.contains("gives no expiry"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_challenge_without_nonce_and_a_200_without_our_contact_fail_cleanly() {
    let mut peer = Peer::new();
    let (_d, db) = temp_db();
    let id = account(&db, peer.port(), "udp");
    let mut run = Running::start(&db, &[], &[]);
    let first = peer.register(|_| true);
    peer.reply(&first, "401 Unauthorized", &["WWW-Authenticate: Digest realm=\"t\""]);
    let failed = run.wait_for("failed", Duration::from_secs(10), state(id, "failed"));
    assert_eq!(failed["reason"], "server_error");
    // The retry (after backoff) gets a 200 that lists only somebody else's binding.
    let second = peer.register(|r| r != first);
    peer.reply(&second, "200 OK", &["Contact: <sip:1001@192.0.2.1:5060>;expires=3600"]);
    run.wait_next("failed again", Duration::from_secs(10), state(id, "failed"));
    assert!(!run.seen().iter().any(state(id, "registered")));
    let (code, stderr) = run.terminate(Duration::from_secs(4));
    assert!(code.success());
    assert!(stderr.contains("digest challenge without nonce"), "{stderr}");
    assert!(stderr.contains("does not list our Contact"), "{stderr}");
}

#[test]
fn a_tcp_peer_that_stalls_mid_message_hangs_nothing() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (_d, db) = temp_db();
    let id = account(&db, port, "tcp");
    let mut run = Running::start(&db, &[], &[]);
    let (mut conn, _) = listener.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 4096];
    let n = conn.read(&mut buf).unwrap();
    let req = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(req.starts_with("REGISTER "), "{req}");
    let full = response(&req, "401 Unauthorized", &["WWW-Authenticate: Digest realm=\"t\", nonce=\"n\""]);
    conn.write_all(&full.as_bytes()[..full.len() / 2]).unwrap();
    // Half a message, then silence: the desk still answers commands and stops on SIGTERM.
    std::thread::sleep(Duration::from_secs(1));
    let status = run.command(json!({"id": 7, "cmd": "status"}));
    assert_eq!(status["result"]["accounts"][0]["registration"]["state"], "registering");
    assert!(run.seen().iter().any(state(id, "registering")));
    let (code, _) = run.terminate(Duration::from_secs(3));
    assert!(code.success());
}

#[test]
fn rfc4475_torture_messages_neither_crash_nor_unregister() {
    let mut peer = Peer::new();
    let (_d, db) = temp_db();
    let id = account(&db, peer.port(), "udp");
    let mut run = Running::start(&db, &[], &[]);
    let reg = peer.register(|_| true);
    peer.reply(&reg, "200 OK", &[&format!("Contact: <{}>;expires=60", contact_uri(&reg))]);
    run.wait_for("registered", Duration::from_secs(10), state(id, "registered"));
    let dir = sipdesk_e2e::repo_root().join("tests/fixtures/rfc4475");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "dat"))
        .collect();
    files.sort();
    assert!(files.len() >= 40, "the RFC 4475 messages are in {}", dir.display());
    let (mut answered, mut dropped) = (0, Vec::new());
    for f in &files {
        // The RFC's example addresses stay inside the message; it goes only to our desk.
        let msg = std::fs::read(f).unwrap();
        peer.send(&msg);
        match peer.recv_within(Duration::from_millis(300)) {
            Some(reply) => {
                assert!(reply.starts_with("SIP/2.0 "), "{}: not a response: {reply}", f.display());
                answered += 1;
            }
            None => dropped.push(f.file_stem().unwrap().to_string_lossy().into_owned()),
        }
    }
    eprintln!("RFC 4475: {answered} answered; not answered: {}", dropped.join(" "));
    assert!(answered > 0, "valid requests among them get a response");
    let status = run.command(json!({"id": 1, "cmd": "status"}));
    assert_eq!(status["result"]["accounts"][0]["registration"]["state"], "registered");
    let (code, stderr) = run.terminate(Duration::from_secs(4));
    assert!(code.success());
    assert!(!stderr.contains("panicked"), "{stderr}");
}
