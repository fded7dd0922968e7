//! A TCP proxy between a node and its PostgreSQL that a test can cut, to stage the network
//! failures of docs/api.md (Hardening rules) without touching the database server:
//!
//! - [`Mode::BlackHole`]: bytes stop flowing in both directions and nothing is closed — a
//!   partition without a reset (a firewall dropping packets, a dead switch). Connections
//!   opened meanwhile are accepted and hang too.
//! - [`Mode::Refuse`]: every open connection is closed and new ones are refused (nothing
//!   listens on the port) — a database that is down.
//! - [`Mode::Forward`]: healed; connections held by a black hole carry on where they stopped.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Forward,
    BlackHole,
    Refuse,
}

pub struct Proxy {
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
}

impl Proxy {
    /// Listens on 127.0.0.1:0 and forwards every connection to `upstream`, until dropped.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (mode, _) = watch::channel(Mode::Forward);
        tokio::spawn(accept_loop(listener, upstream, mode.subscribe()));
        Proxy { addr, mode }
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// `url` (a `postgres://` URL) with its host and port replaced by the proxy's.
    pub fn url(&self, url: &str) -> String {
        let start = url.find("://").map_or(0, |i| i + 3);
        let rest = &url[start..];
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let host = &rest[..end];
        let userinfo = host.rfind('@').map_or(String::new(), |at| host[..=at].to_owned());
        format!("{}{userinfo}{}{}", &url[..start], self.addr, &rest[end..])
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Closes everything and stops listening (the accept loop ends when the sender goes).
        self.mode.send_replace(Mode::Refuse);
    }
}

/// The host and port of a `postgres://` URL, resolved.
pub async fn upstream_of(url: &str) -> SocketAddr {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let host = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let host = host.rsplit('@').next().unwrap_or(host);
    let host = if host.contains(':') { host.to_owned() } else { format!("{host}:5432") };
    tokio::net::lookup_host(host).await.expect("resolve").next().expect("an address")
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    let addr = listener.local_addr().expect("address");
    let mut listener = Some(listener);
    loop {
        let Some(l) = &listener else {
            // Refusing: nothing listens. Listen again (same port) when the mode changes.
            if mode.changed().await.is_err() {
                return;
            }
            if *mode.borrow() != Mode::Refuse {
                listener = Some(TcpListener::bind(addr).await.expect("listen again on the proxy port"));
            }
            continue;
        };
        tokio::select! {
            accepted = l.accept() => {
                let Ok((client, _)) = accepted else { continue };
                tokio::spawn(connection(client, upstream, mode.clone()));
            }
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
                if *mode.borrow() == Mode::Refuse {
                    listener = None;
                }
            }
        }
    }
}

async fn connection(client: TcpStream, upstream: SocketAddr, mode: watch::Receiver<Mode>) {
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    // Either direction ending (a close, or Refuse) ends both: dropping the halves closes them.
    tokio::select! {
        _ = pump(client_read, server_write, mode.clone()) => {}
        _ = pump(server_read, client_write, mode) => {}
    }
}

async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut mode: watch::Receiver<Mode>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = mode.wait_for(|m| *m == Mode::Refuse) => return,
        };
        // Held, not dropped, while black-holed: delivered if the partition heals.
        match mode.wait_for(|m| *m != Mode::BlackHole).await {
            Ok(m) if *m == Mode::Forward => {}
            _ => return,
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[test]
fn urls_are_pointed_at_the_proxy() {
    let (mode, _) = watch::channel(Mode::Forward);
    let p = Proxy { addr: "127.0.0.1:4000".parse().expect("addr"), mode };
    assert_eq!(p.url("postgres://postgres@127.0.0.1:5432/kg_x"), "postgres://postgres@127.0.0.1:4000/kg_x");
    assert_eq!(p.url("postgres://u:p@db/x?sslmode=disable"), "postgres://u:p@127.0.0.1:4000/x?sslmode=disable");
    assert_eq!(p.url("postgresql://h:1"), "postgresql://127.0.0.1:4000");
}
