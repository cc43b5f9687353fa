//! Noticing that a client went away while its request waits (`wait_secs`).
//!
//! actix-web keeps running a handler after an HTTP/1 client closes its connection (a
//! half-closed connection may still want its answer), so a waiting request looks at the
//! socket itself: each connection keeps a duplicate of its socket in its connection data,
//! and a waiting handler peeks at it now and then. End of stream or an error means the
//! client is gone; pipelined bytes mean it is still there.

use std::any::Any;
use std::io::ErrorKind;
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::dev::Extensions;
use socket2::{SockRef, Socket};

/// How often a waiting request looks at its client's socket.
const LOOK_EVERY: Duration = Duration::from_millis(250);

/// A connection's socket, shared with its requests.
#[derive(Clone)]
struct PeerSocket(Arc<Socket>);

/// The server's `on_connect` hook: keeps a duplicate of the connection's socket.
pub(crate) fn on_connect(connection: &dyn Any, data: &mut Extensions) {
    let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    match SockRef::from(stream).try_clone() {
        Ok(socket) => {
            data.insert(PeerSocket(Arc::new(socket)));
        }
        Err(err) => tracing::debug!(error = %err, "cannot watch this connection"),
    }
}

/// Completes once the client of `req` has gone away; never, if that cannot be told.
pub(crate) async fn gone(req: &HttpRequest) {
    let Some(PeerSocket(socket)) = req.conn_data::<PeerSocket>().cloned() else {
        return std::future::pending().await;
    };
    let mut byte = [MaybeUninit::<u8>::uninit(); 1];
    loop {
        tokio::time::sleep(LOOK_EVERY).await;
        // The socket is non-blocking (the runtime made it so, for both descriptors).
        match socket.peek(&mut byte) {
            Ok(0) => return,
            Ok(_) => {}
            Err(err) if err.kind() == ErrorKind::WouldBlock => {}
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}
