//! The gateway over real TCP connections on 127.0.0.1: stream framing (split and coalesced
//! writes), responses back on the connection the request came in on, TCP backends, keep-alives.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::timeout;

/// A carrier connection from 127.0.0.2 (the Fuzhou trunk).
async fn carrier(gw: &Gateway) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let stream = s.connect(gw.sip).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Reads until `n` complete SIP messages (by Content-Length) are in, within the wait.
async fn read_messages(stream: &mut TcpStream, n: usize) -> Vec<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let mut msgs = Vec::new();
        let mut rest = &buf[..];
        while let Ok(Some(dualgate::sip::Frame::Message(len))) = dualgate::sip::frame(rest, 65_535)
        {
            msgs.push(String::from_utf8_lossy(&rest[..len]).into_owned());
            rest = &rest[len..];
        }
        if msgs.len() >= n {
            return msgs;
        }
        let got = timeout(WAIT, stream.read(&mut chunk))
            .await
            .expect("data within the wait")
            .unwrap();
        assert!(got > 0, "connection closed after {} messages", msgs.len());
        buf.extend_from_slice(&chunk[..got]);
    }
}

#[tokio::test]
async fn an_invite_split_across_writes_is_forwarded_and_answers_return_on_the_connection() {
    let fuzhou = Peer::bind("127.0.0.1").await;
    let x = Peer::bind("127.0.0.1").await;
    let a = Peer::bind("127.0.0.1").await;
    let gw = Mapping::on(&fuzhou, &x, &a)
        .start(&["--now", PARALLEL])
        .await;
    let mut conn = carrier(&gw).await;
    let local = conn.local_addr().unwrap();
    let inv = invite("sip:059185666661@gw", &local, "t1", "z9hG4bKt1", "TCP");
    let (a1, rest) = inv.split_at(10);
    let (a2, a3) = rest.split_at(rest.len() - 20);
    for part in [a1, a2, a3] {
        conn.write_all(part.as_bytes()).await.unwrap();
        tokio::task::yield_now().await;
    }
    let (got, _) = fuzhou.recv().await;
    assert_eq!(
        start_line(&got),
        format!("INVITE sip:12356@{} SIP/2.0", fuzhou.addr)
    );
    let vias = headers(&got, "Via");
    assert!(
        vias[0].starts_with(&format!("SIP/2.0/UDP {}", gw.sip))
            && vias[0].contains(&format!(";dgc={}", local.port())),
        "{got}"
    );
    assert!(
        vias[1].starts_with(&format!("SIP/2.0/TCP {local};branch=z9hG4bKt1")),
        "{got}"
    );
    // RFC 5658 double Record-Route: the top entry faces the UDP backend, the next the TCP caller.
    let rr = format!("<sip:{gw};lr>, <sip:{gw};transport=tcp;lr>", gw = gw.sip);
    assert_eq!(header(&got, "Record-Route"), Some(rr.as_str()));
    assert_eq!(
        got.split("\r\n\r\n").nth(1),
        inv.split("\r\n\r\n").nth(1),
        "body byte-exact"
    );

    // One at a time: two UDP workers may reorder back-to-back datagrams from the backend.
    for status in ["180 Ringing", "200 OK"] {
        fuzhou.send(gw.sip, &respond(&got, status, "cc")).await;
        let answer = read_messages(&mut conn, 1).await.remove(0);
        assert_eq!(start_line(&answer), format!("SIP/2.0 {status}"));
        assert_eq!(headers(&answer, "Via").len(), 1, "{answer}");
    }

    // The call centre hangs up: its BYE carries both Route entries (its route set) and reaches
    // the caller over the caller's TCP connection, with both entries consumed.
    let contact = format!("sip:13800000000@{local};transport=tcp");
    let msg = bye(
        &contact,
        &fuzhou.addr,
        "t1",
        "z9hG4bKt1bye",
        "UDP",
        1,
        "from-t1",
        &rr,
    );
    fuzhou.send(gw.sip, &msg).await;
    let got = read_messages(&mut conn, 1).await.remove(0);
    assert_eq!(start_line(&got), format!("BYE {contact} SIP/2.0"));
    assert!(header(&got, "Route").is_none(), "{got}");
    assert!(
        headers(&got, "Via")[0].starts_with(&format!("SIP/2.0/TCP {}", gw.sip)),
        "{got}"
    );
}

#[tokio::test]
async fn coalesced_messages_in_one_write_are_each_answered() {
    let fuzhou = Peer::bind("127.0.0.1").await;
    let gw = Mapping::new(
        &[fuzhou.uri()],
        &fuzhou.uri().replace("udp", "tcp"),
        &udp_uri(free_port()),
    )
    .start(&["--now", PARALLEL])
    .await;
    let mut conn = carrier(&gw).await;
    let local = conn.local_addr().unwrap();
    let mut burst = String::new();
    for i in 0..3 {
        burst.push_str(&request(
            "OPTIONS",
            "sip:gw",
            &local,
            &format!("ka{i}"),
            &format!("z9hG4bKka{i}"),
            "TCP",
            1,
            "",
            "70",
        ));
    }
    burst.push_str(&request(
        "INVITE",
        "sip:059199999999@gw",
        &local,
        "nf",
        "z9hG4bKnf",
        "TCP",
        1,
        "",
        "70",
    ));
    conn.write_all(burst.as_bytes()).await.unwrap();
    let answers = read_messages(&mut conn, 4).await;
    for (i, a) in answers.iter().take(3).enumerate() {
        assert_eq!(start_line(a), "SIP/2.0 200 OK");
        assert_eq!(header(a, "Call-ID"), Some(format!("ka{i}").as_str()));
    }
    assert_eq!(start_line(&answers[3]), "SIP/2.0 404 Not Found");
}

#[tokio::test]
async fn a_double_crlf_ping_gets_a_crlf_pong() {
    let fuzhou = Peer::bind("127.0.0.1").await;
    let gw = Mapping::new(
        &[fuzhou.uri()],
        &fuzhou.uri(),
        &fuzhou.uri().replace("udp", "tcp"),
    )
    .start(&["--now", PARALLEL])
    .await;
    let mut conn = carrier(&gw).await;
    conn.write_all(b"\r\n\r\n").await.unwrap();
    let mut pong = [0u8; 2];
    timeout(WAIT, conn.read_exact(&mut pong))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&pong, b"\r\n");
}

#[tokio::test]
async fn a_tcp_backend_gets_the_call_on_one_connection_and_its_answers_reach_a_udp_caller() {
    let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_uri = format!("sip:{};transport=tcp", backend.local_addr().unwrap());
    let x = Peer::bind("127.0.0.1").await;
    let gw = Mapping::new(&[backend_uri], &x.uri(), &x.uri())
        .start(&["--now", PARALLEL])
        .await;
    let caller = Peer::bind("127.0.0.2").await;
    caller
        .send(
            gw.sip,
            &invite("sip:12356@gw", &caller.addr, "tb1", "z9hG4bKtb1", "UDP"),
        )
        .await;
    let (mut conn, _) = timeout(WAIT, backend.accept()).await.unwrap().unwrap();
    let got = read_messages(&mut conn, 1).await.remove(0);
    assert_eq!(
        start_line(&got),
        format!(
            "INVITE sip:12356@{};transport=tcp SIP/2.0",
            backend.local_addr().unwrap()
        )
    );
    assert!(
        headers(&got, "Via")[0].starts_with(&format!("SIP/2.0/TCP {}", gw.sip)),
        "{got}"
    );
    conn.write_all(respond(&got, "486 Busy Here", "b").as_bytes())
        .await
        .unwrap();
    let (answer, _) = caller.recv().await;
    assert_eq!(start_line(&answer), "SIP/2.0 486 Busy Here");
    // The CANCEL/ACK of the same call reuse the open connection.
    caller
        .send(
            gw.sip,
            &request(
                "ACK",
                "sip:12356@gw",
                &caller.addr,
                "tb1",
                "z9hG4bKtb1",
                "UDP",
                1,
                "b",
                "70",
            ),
        )
        .await;
    let ack = read_messages(&mut conn, 1).await.remove(0);
    assert!(start_line(&ack).starts_with("ACK sip:12356@"), "{ack}");
}

#[tokio::test]
async fn a_response_whose_connection_closed_goes_to_a_new_connection_at_the_sent_by_port() {
    // RFC 3261 §18.2.2: the caller's connection is gone by the time the answer comes, so the
    // gateway connects to the received address and the sent-by port (the caller's listener).
    let fuzhou = Peer::bind("127.0.0.1").await;
    let gw = Mapping::one_backend(&fuzhou.uri())
        .start(&["--now", PARALLEL])
        .await;
    let listener = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let sent_by = listener.local_addr().unwrap();
    let mut conn = carrier(&gw).await;
    let inv = invite("sip:12356@gw", &sent_by, "rc1", "z9hG4bKrc1", "TCP").replace(";rport", "");
    conn.write_all(inv.as_bytes()).await.unwrap();
    let (got, _) = fuzhou.recv().await;
    // Close our side and wait for the gateway to close its own (EOF): the connection is gone.
    conn.shutdown().await.unwrap();
    let mut rest = [0u8; 64];
    let eof = timeout(WAIT, conn.read(&mut rest))
        .await
        .expect("the gateway closes too")
        .unwrap();
    assert_eq!(eof, 0);
    fuzhou
        .send(gw.sip, &respond(&got, "486 Busy Here", "b"))
        .await;
    let (mut back, _) = timeout(WAIT, listener.accept())
        .await
        .expect("the gateway reconnects")
        .unwrap();
    let answer = read_messages(&mut back, 1).await.remove(0);
    assert_eq!(start_line(&answer), "SIP/2.0 486 Busy Here");
    assert_eq!(header(&answer, "Call-ID"), Some("rc1"));
}
