//! Name resolution and dialling by resolved address: discovery compares the socket
//! addresses behind two spellings of a node, and needs to know which one a probe reached.

use std::future::poll_fn;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use crate::lock::lock;
use crate::runtime::{BoxFuture, Runtime};

type Slot = Arc<Mutex<(Option<io::Result<Vec<SocketAddr>>>, Option<Waker>)>>;

/// [`Runtime::resolve`]'s default: literal addresses at once, names on a thread of their own
/// (the system resolver blocks).
pub(crate) fn on_a_thread(address: &str) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> {
    if let Ok(a) = address.parse::<SocketAddr>() {
        return Box::pin(std::future::ready(Ok(vec![a])));
    }
    let slot: Slot = Arc::new(Mutex::new((None, None)));
    let theirs = slot.clone();
    let address = address.to_owned();
    let spawned = std::thread::Builder::new()
        .name("dqlite-resolve".into())
        .spawn(move || {
            let result = address.to_socket_addrs().map(Iterator::collect);
            let mut s = lock(&theirs);
            s.0 = Some(result);
            if let Some(w) = s.1.take() {
                w.wake();
            }
        });
    if let Err(e) = spawned {
        return Box::pin(std::future::ready(Err(e)));
    }
    Box::pin(poll_fn(move |cx| {
        let mut s = lock(&slot);
        match s.0.take() {
            Some(result) => Poll::Ready(result),
            None => {
                s.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }))
}

/// Resolves `address`; an empty answer is an error.
pub(crate) async fn resolve<R: Runtime>(rt: &R, address: &str) -> io::Result<Vec<SocketAddr>> {
    let addrs = rt.resolve(address).await?;
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{address} resolves to no address"),
        ));
    }
    Ok(addrs)
}
