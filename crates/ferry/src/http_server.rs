//! The API's HTTP/1.1 server: hyper under axum, with the limits a service exposed to a network
//! needs. A client gets `header_timeout` to send a request's headers (a half-open connection
//! is closed after it), a request body that stops arriving for `body_idle_timeout` fails, and
//! at most `max_connections` connections are open at once: at that limit a new connection
//! closes the oldest one that is not in the middle of a request, so thousands of idle or
//! half-open connections cannot lock real clients out. On shutdown, connections finish their
//! request in flight (up to `drain`) and are then closed.

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

/// Limits at the HTTP edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Time to send a request's headers (from the connection's start or the previous answer).
    pub header_timeout: Duration,
    /// Longest pause inside a request body.
    pub body_idle_timeout: Duration,
    /// How long shutdown waits for requests in flight.
    pub drain: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(30),
            drain: Duration::from_secs(10),
        }
    }
}

/// One open connection as the limit sees it.
struct Open {
    /// Requests being served on it now (0: idle, or still sending headers).
    busy: Arc<AtomicUsize>,
    /// Closes it.
    close: oneshot::Sender<()>,
}

/// Open connections in accept order (ids only grow).
#[derive(Default)]
struct Connections {
    open: Mutex<BTreeMap<u64, Open>>,
}

impl Connections {
    /// Registers a connection; at the limit, first closes the oldest one without a request in
    /// flight. Returns false when every connection is busy (the new one is then refused).
    fn admit(
        &self,
        id: u64,
        busy: Arc<AtomicUsize>,
        close: oneshot::Sender<()>,
        max: usize,
    ) -> bool {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.len() >= max {
            let idle = open
                .iter()
                .find(|(_, c)| c.busy.load(Ordering::Acquire) == 0)
                .map(|(id, _)| *id);
            match idle.and_then(|id| open.remove(&id)) {
                Some(evicted) => {
                    let _ = evicted.close.send(());
                }
                None => return false,
            }
        }
        open.insert(id, Open { busy, close });
        true
    }

    fn leave(&self, id: u64) {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }
}

/// Counts a request as in flight on its connection while it is served.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(busy: &Arc<AtomicUsize>) -> Self {
        busy.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(busy))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as in flight until the last byte is sent
/// (a long download is not an idle connection).
struct CountedBody {
    inner: axum::body::Body,
    _in_flight: InFlight,
}

impl http_body::Body for CountedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `router` on `listener` until `shutdown` turns true, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let router = router.layer(axum::middleware::from_fn(move |req, next| {
        body_idle_timeout(req, next, limits.body_idle_timeout)
    }));
    let connections = Arc::new(Connections::default());
    let (drain_tx, drain_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let mut next_id = 0u64;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        while tasks.try_join_next().is_some() {}
        next_id += 1;
        let id = next_id;
        let busy = Arc::new(AtomicUsize::new(0));
        let (close_tx, close_rx) = oneshot::channel();
        if !connections.admit(id, Arc::clone(&busy), close_tx, limits.max_connections) {
            tracing::warn!(
                limit = limits.max_connections,
                "every connection is busy; refusing one"
            );
            drop(stream);
            continue;
        }
        let service = {
            let router = router.clone();
            let busy = Arc::clone(&busy);
            hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                let guard = InFlight::new(&busy);
                let mut router = router.clone();
                async move {
                    // A Router is always ready; its error type is Infallible.
                    let response =
                        tower::Service::call(&mut router, request.map(axum::body::Body::new)).await;
                    response.map(|r| {
                        r.map(|inner| CountedBody {
                            inner,
                            _in_flight: guard,
                        })
                    })
                }
            })
        };
        let connections = Arc::clone(&connections);
        let mut drain = drain_rx.clone();
        tasks.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(true);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let draining = tokio::select! {
                _ = conn.as_mut() => false,
                _ = close_rx => false,
                // The watch guard must not live across the await below.
                _ = async { drain.wait_for(|d| *d).await.map(|_| ()) } => true,
            };
            if draining {
                conn.as_mut().graceful_shutdown();
                let _ = conn.as_mut().await;
            }
            connections.leave(id);
        });
    }
    drop(listener);
    let _ = drain_tx.send(true);
    if tokio::time::timeout(limits.drain, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!(
            left = tasks.len(),
            "requests still running after the drain time; closing their connections"
        );
        tasks.abort_all();
    }
}

/// Fails a request body that pauses longer than `idle` between two pieces, so a client
/// trickling a body cannot hold a connection (and a handler) forever.
async fn body_idle_timeout(request: Request, next: Next, idle: Duration) -> Response {
    use futures::StreamExt;
    let (parts, body) = request.into_parts();
    let stream = body.into_data_stream();
    let timed = futures::stream::unfold(Some(stream), move |stream| async move {
        let mut stream = stream?;
        match tokio::time::timeout(idle, stream.next()).await {
            Ok(Some(piece)) => Some((piece, Some(stream))),
            Ok(None) => None,
            Err(_) => Some((
                Err(axum::Error::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "the body stopped arriving (nothing for {} s)",
                        idle.as_secs()
                    ),
                ))),
                None,
            )),
        }
    })
    .boxed();
    next.run(Request::from_parts(
        parts,
        axum::body::Body::from_stream(timed),
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request counts as in flight until its response body is gone, not only until the
    /// handler returns (a download in progress is not idle).
    #[test]
    fn a_response_body_keeps_its_request_in_flight() {
        let busy = Arc::new(AtomicUsize::new(0));
        let body = CountedBody {
            inner: axum::body::Body::from("data"),
            _in_flight: InFlight::new(&busy),
        };
        assert_eq!(busy.load(Ordering::Acquire), 1);
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(4));
        drop(body);
        assert_eq!(busy.load(Ordering::Acquire), 0);
    }

    /// At the limit the oldest idle connection makes room; busy ones are never closed.
    #[test]
    fn the_limit_evicts_the_oldest_idle_connection() {
        let connections = Connections::default();
        let busy = Arc::new(AtomicUsize::new(1));
        let idle = Arc::new(AtomicUsize::new(0));
        let (b_tx, mut b_rx) = oneshot::channel();
        let (i_tx, mut i_rx) = oneshot::channel();
        let (n_tx, _n_rx) = oneshot::channel();
        assert!(connections.admit(1, Arc::clone(&busy), b_tx, 2));
        assert!(connections.admit(2, Arc::clone(&idle), i_tx, 2));
        assert!(connections.admit(3, Arc::new(AtomicUsize::new(1)), n_tx, 2));
        assert!(i_rx.try_recv().is_ok(), "the idle one was closed");
        assert!(b_rx.try_recv().is_err(), "the busy one stays");
        let (x_tx, _x_rx) = oneshot::channel();
        assert!(
            !connections.admit(4, Arc::new(AtomicUsize::new(0)), x_tx, 2),
            "all busy: refused"
        );
    }
}
