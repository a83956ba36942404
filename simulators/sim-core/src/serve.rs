//! Serving on a loopback port: each request is read whole and given to the simulator's handler,
//! whose [`DropConnection`] closes the connection with no answer.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::{DropConnection, Reply, Req, lock};

/// A running server; stops on [`Running::shutdown`] or when dropped.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Running {
    /// Serves `handler` on `addr`, which must be a loopback address: a simulator hands out tokens to
    /// anyone. `name` says which simulator refused.
    pub async fn start<H, Fut>(name: &str, addr: SocketAddr, handler: H) -> anyhow::Result<Running>
    where
        H: Fn(Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Reply, DropConnection>> + Send + 'static,
    {
        anyhow::ensure!(addr.ip().is_loopback(), "{name} binds loopback only, not {addr}");
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(serve(listener, Arc::new(handler), stop_rx));
        Ok(Running {
            addr,
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and closes open connections, then waits for the server task.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let task = lock(&self.task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn serve<H, Fut>(listener: tokio::net::TcpListener, handler: Arc<H>, mut stop: tokio::sync::watch::Receiver<bool>)
where
    H: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Reply, DropConnection>> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let (handler, mut stop) = (handler.clone(), stop.clone());
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let svc = hyper::service::service_fn(move |req| {
                let handler = handler.clone();
                async move {
                    let req = Req::read(req).await;
                    handler(req).await.map(Reply::into_response)
                }
            });
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, svc);
            tokio::select! {
                _ = conn => {}
                _ = stop.wait_for(|s| *s) => {}
            }
        });
    }
}
