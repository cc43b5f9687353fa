//! A TCP proxy between the server and PostgreSQL that can misbehave on demand: pass
//! traffic, cut every connection with a reset, blackhole (accept and never answer;
//! connections already open stall), add latency to every byte, or refuse new
//! connections; and switch to another upstream (a promoted standby).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pass,
    /// New connections are accepted and never answered; open ones stall both ways.
    Blackhole,
    /// Every chunk toward the database is delivered this much later (in order): each
    /// round trip takes this much longer.
    Latency(Duration),
    /// The port refuses connections; open ones go on.
    Refuse,
}

struct Shared {
    mode: watch::Sender<Mode>,
    /// Goes up at every cut: each connection resets both its sockets.
    cuts: watch::Sender<u64>,
    upstream: Mutex<SocketAddr>,
}

/// The proxy, listening on 127.0.0.1 until dropped.
pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared {
            mode: watch::channel(Mode::Pass).0,
            cuts: watch::channel(0).0,
            upstream: Mutex::new(upstream),
        });
        let task = tokio::spawn(accept_loop(listener, port, shared.clone()));
        Self { port, shared, task }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn set(&self, mode: Mode) {
        self.shared.mode.send_replace(mode);
    }

    pub fn mode(&self) -> Mode {
        *self.shared.mode.borrow()
    }

    /// Resets every open connection, on both sides.
    pub fn cut_all(&self) {
        self.shared.cuts.send_modify(|n| *n += 1);
    }

    /// Sends new connections to `upstream`, and cuts the open ones (they lead to the old).
    pub fn switch_to(&self, upstream: SocketAddr) {
        *self
            .shared
            .upstream
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = upstream;
        self.cut_all();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut_all();
    }
}

async fn accept_loop(listener: TcpListener, port: u16, shared: Arc<Shared>) {
    let mut listener = Some(listener);
    let mut modes = shared.mode.subscribe();
    loop {
        let refusing = *modes.borrow_and_update() == Mode::Refuse;
        match (&listener, refusing) {
            // Refusing: the port is closed, so connecting fails at once.
            (Some(_), true) => listener = None,
            (None, false) => loop {
                match TcpListener::bind(("127.0.0.1", port)).await {
                    Ok(bound) => {
                        listener = Some(bound);
                        break;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            },
            _ => {}
        }
        let Some(bound) = &listener else {
            if modes.changed().await.is_err() {
                return;
            }
            continue;
        };
        tokio::select! {
            accepted = bound.accept() => {
                if let Ok((client, _)) = accepted {
                    let _ = client.set_nodelay(true);
                    tokio::spawn(serve(client, shared.clone()));
                }
            }
            changed = modes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// Sets SO_LINGER to zero, so that dropping the socket sends a reset.
fn reset_on_drop(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

async fn serve(mut client: TcpStream, shared: Arc<Shared>) {
    let mut cuts = shared.cuts.subscribe();
    cuts.borrow_and_update();
    let mut modes = shared.mode.subscribe();
    if *modes.borrow_and_update() == Mode::Blackhole {
        // Accepted, never answered: held until the client gives up or a cut.
        let mut sink = [0u8; 1024];
        loop {
            tokio::select! {
                read = client.read(&mut sink) => if matches!(read, Ok(0) | Err(_)) { return },
                _ = cuts.changed() => {
                    reset_on_drop(&client);
                    return;
                }
            }
        }
    }
    let upstream = *shared
        .upstream
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        reset_on_drop(&client);
        return;
    };
    let _ = server.set_nodelay(true);
    let cut = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let forward = async {
            tokio::join!(
                pipe(client_read, server_write, shared.mode.subscribe(), true),
                pipe(server_read, client_write, shared.mode.subscribe(), false),
            )
        };
        tokio::select! {
            _ = forward => false,
            _ = cuts.changed() => true,
        }
    };
    if cut {
        reset_on_drop(&client);
        reset_on_drop(&server);
    }
}

/// Forwards one direction, holding chunks while blackholed and delaying them under
/// latency (if `delayed`). Ends at end of stream or error (shutting the other side's
/// writing down).
async fn pipe<R, W>(mut from: R, mut to: W, mut modes: watch::Receiver<Mode>, delayed: bool)
where
    R: AsyncReadExt + Unpin,
    W: AsyncWriteExt + Unpin,
{
    let (chunks, mut due) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reading = {
        let mut modes = modes.clone();
        async move {
            let mut buffer = vec![0u8; 16 * 1024];
            while let Ok(read) = from.read(&mut buffer).await {
                if read == 0 {
                    break;
                }
                let delay = match *modes.borrow_and_update() {
                    Mode::Latency(delay) if delayed => delay,
                    _ => Duration::ZERO,
                };
                if chunks
                    .send((Instant::now() + delay, buffer[..read].to_vec()))
                    .is_err()
                {
                    break;
                }
            }
        }
    };
    let writing = async move {
        while let Some((at, chunk)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            while *modes.borrow_and_update() == Mode::Blackhole {
                if modes.changed().await.is_err() {
                    return;
                }
            }
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reading, writing);
}
