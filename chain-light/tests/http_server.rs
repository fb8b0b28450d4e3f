//! The daemons' HTTP server under slow clients: clients that never finish their headers
//! hold a connection only until the header timeout, connections beyond the cap wait
//! rather than being served, and handlers see the client's address.
#![cfg(feature = "http-server")]
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::Router;
use chain_light::http_server::{serve, Limits};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

async fn read_all(s: &mut TcpStream, within: Duration) -> Option<String> {
    let mut out = Vec::new();
    match tokio::time::timeout(within, s.read_to_end(&mut out)).await {
        Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_connections_are_capped() {
    let router = Router::new().route(
        "/ip",
        get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let timeout = Duration::from_millis(800);
    tokio::spawn(serve(
        listener,
        router,
        Limits {
            max_connections: 2,
            header_timeout: timeout,
        },
    ));

    // Two slow clients take both slots with headers they never finish.
    let t0 = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /ip HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A third, complete request waits: no slot is free.
    let mut third = TcpStream::connect(addr).await.unwrap();
    third
        .write_all(b"GET /ip HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut early = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), third.read(&mut early))
            .await
            .is_err(),
        "served beyond the connection cap"
    );
    // The slow clients are disconnected once their header time is up...
    for s in &mut slow {
        let got = read_all(s, Duration::from_secs(10)).await;
        assert!(got.is_some(), "a slow client kept its connection");
        assert!(!got.unwrap().contains("200 OK"));
    }
    assert!(t0.elapsed() >= timeout, "cut off before the header timeout");
    // ...which frees the slots: the waiting request is served, and sees its address.
    let answer = read_all(&mut third, Duration::from_secs(10)).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.ends_with("127.0.0.1"), "{answer}");
}
