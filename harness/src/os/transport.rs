//! How the harness talks to replicas: one request, one response, bounded by a timeout.
//!
//! Why a trait instead of the client library directly: the workers, the retry logic, the final
//! phase and the history recording can then be tested against an in-memory fake cluster in
//! milliseconds, and the real QUIC client is one implementation among two.

use replica::client_proto::{ClientRequest, ClientResponse};
use replica::types::NodeId;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Why a call got no answer. Always indefinite: the request may or may not have arrived.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error("{node}: no answer within {timeout:?}")]
    Timeout { node: NodeId, timeout: Duration },
    #[error("{node}: {message}")]
    Failed { node: NodeId, message: String },
}

pub type CallFuture<'a> =
    Pin<Box<dyn Future<Output = Result<ClientResponse, CallError>> + Send + 'a>>;

/// Sends one request to one replica and waits at most `timeout` for its response.
pub trait Transport: Send + Sync + 'static {
    fn call(&self, node: NodeId, request: ClientRequest, timeout: Duration) -> CallFuture<'_>;
}
/// The real thing: the replica's QUIC client library.
pub struct QuicTransport {
    client: replica::client::Client,
}

impl QuicTransport {
    pub fn new(client: replica::client::Client) -> Self {
        QuicTransport { client }
    }
}

impl Transport for QuicTransport {
    fn call(&self, node: NodeId, request: ClientRequest, timeout: Duration) -> CallFuture<'_> {
        Box::pin(async move {
            // Bound the call ourselves too, whatever the library does with its timeout.
            match tokio::time::timeout(
                timeout + Duration::from_millis(50),
                self.client.call(node, &request, timeout),
            )
            .await
            {
                Ok(Ok(response)) => Ok(response),
                Ok(Err(e)) => Err(CallError::Failed {
                    node,
                    message: e.to_string(),
                }),
                Err(_) => Err(CallError::Timeout { node, timeout }),
            }
        })
    }
}

/// Runs futures concurrently and collects their outputs in order.
pub async fn join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, out) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *out = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}
