//! [`TcpProxy`]: a loopback TCP proxy between a pool and its server, to
//! inject network faults the server itself can't: latency, connections
//! reset, a silent partition.
//!
//! Runs on the runtime of the test that starts it (a proxy lives within one
//! test) and stops when dropped, resetting the connections it carries.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::{Error, Result};

/// What the proxy does with traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProxyMode {
    /// Pass everything through.
    #[default]
    Forward,
    /// Hold every chunk of data this long before passing it on, in both
    /// directions (a round trip gains twice the delay).
    Delay(Duration),
    /// Reset every open connection (RST) and reset new ones right after
    /// accepting them: the server looks unreachable, fast.
    Drop,
    /// Accept connections but pass nothing on and close nothing, like a
    /// network partition: clients hang until their own timeouts. Held data
    /// flows again when the mode goes back to `Forward`/`Delay`.
    Blackhole,
}

#[derive(Clone, Copy, Debug)]
struct State {
    mode: ProxyMode,
    /// Bumped by `close_all`: connections of older epochs are reset.
    epoch: u64,
    shutdown: bool,
}

#[derive(Debug, Default)]
struct Stats {
    accepted: AtomicU64,
    active: AtomicUsize,
}

/// A fault-injecting TCP proxy on 127.0.0.1 (random port).
///
/// ```no_run
/// # async fn demo() -> pool_testkit::Result<()> {
/// use pool_testkit::{ProxyMode, TcpProxy, shared_server};
/// let server = shared_server();
/// let db = server.create_database().await?;
/// let proxy = TcpProxy::start(server.addr()).await?;
/// let url = proxy.url_for(&db.url()); // give this URL to the pool
/// proxy.set_mode(ProxyMode::Blackhole); // the network goes silent
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    state: watch::Sender<State>,
    stats: Arc<Stats>,
}

impl TcpProxy {
    /// Listens on 127.0.0.1:0 and forwards to `upstream`. Needs a tokio
    /// runtime (the proxy's tasks run on it).
    pub async fn start(upstream: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::io("binding the proxy listener", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("proxy listener address", e))?;
        let (state, rx) = watch::channel(State {
            mode: ProxyMode::Forward,
            epoch: 0,
            shutdown: false,
        });
        let stats = Arc::new(Stats::default());
        tokio::spawn(accept_loop(listener, upstream, rx, stats.clone()));
        Ok(Self {
            addr,
            upstream,
            state,
            stats,
        })
    }

    /// The proxy's listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the proxy forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn url_for(&self, url: &str) -> String {
        match url::Url::parse(url) {
            Ok(mut u) => {
                let _ = u.set_host(Some(&self.addr.ip().to_string()));
                let _ = u.set_port(Some(self.addr.port()));
                u.to_string()
            }
            Err(_) => url.to_owned(),
        }
    }

    /// Switches mode; open connections follow at once.
    pub fn set_mode(&self, mode: ProxyMode) {
        self.state.send_modify(|s| s.mode = mode);
    }

    /// The current mode.
    pub fn mode(&self) -> ProxyMode {
        self.state.borrow().mode
    }

    /// Resets every open connection (new ones are served per the mode).
    pub fn close_all(&self) {
        self.state.send_modify(|s| s.epoch += 1);
    }

    /// Connections open through the proxy now.
    pub fn active_connections(&self) -> usize {
        self.stats.active.load(Ordering::SeqCst)
    }

    /// Connections accepted since start.
    pub fn accepted_connections(&self) -> u64 {
        self.stats.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.state.send_modify(|s| s.shutdown = true);
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    mut rx: watch::Receiver<State>,
    stats: Arc<Stats>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                stats.accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(client, upstream, rx.clone(), stats.clone()));
            }
            changed = rx.changed() => {
                if changed.is_err() || rx.borrow().shutdown {
                    return;
                }
            }
        }
    }
}

/// Decrements the active count however `serve` ends.
struct ActiveGuard(Arc<Stats>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

enum Outcome {
    /// One side closed: close the other normally.
    Closed,
    /// Cut both sides with RST.
    Reset,
}

fn cut(epoch: u64, s: &State) -> bool {
    s.shutdown || s.epoch != epoch || s.mode == ProxyMode::Drop
}

fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    mut rx: watch::Receiver<State>,
    stats: Arc<Stats>,
) {
    stats.active.fetch_add(1, Ordering::SeqCst);
    let _guard = ActiveGuard(stats);
    let epoch = rx.borrow().epoch;
    // A blackholed connection is held without connecting upstream.
    loop {
        let state = *rx.borrow_and_update();
        if cut(epoch, &state) {
            return reset(client);
        }
        if state.mode != ProxyMode::Blackhole {
            break;
        }
        if rx.changed().await.is_err() {
            return reset(client);
        }
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return reset(client);
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let outcome = {
        let (cr, cw) = client.split();
        let (sr, sw) = server.split();
        tokio::select! {
            o = pump(cr, sw, rx.clone(), epoch) => o,
            o = pump(sr, cw, rx.clone(), epoch) => o,
            o = killed(rx, epoch) => o,
        }
    };
    if let Outcome::Reset = outcome {
        reset(client);
        reset(server);
    }
}

async fn killed(mut rx: watch::Receiver<State>, epoch: u64) -> Outcome {
    loop {
        if cut(epoch, &rx.borrow_and_update()) {
            return Outcome::Reset;
        }
        if rx.changed().await.is_err() {
            return Outcome::Reset;
        }
    }
}

async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    mut rx: watch::Receiver<State>,
    epoch: u64,
) -> Outcome {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return Outcome::Closed,
            Ok(n) => n,
        };
        loop {
            let state = *rx.borrow_and_update();
            if cut(epoch, &state) {
                return Outcome::Reset;
            }
            match state.mode {
                ProxyMode::Forward => break,
                ProxyMode::Delay(d) => {
                    tokio::time::sleep(d).await;
                    break;
                }
                // Hold the chunk until the mode changes.
                ProxyMode::Blackhole | ProxyMode::Drop => {
                    if rx.changed().await.is_err() {
                        return Outcome::Reset;
                    }
                }
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return Outcome::Closed;
        }
    }
}
