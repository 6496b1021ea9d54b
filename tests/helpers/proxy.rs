//! A TCP proxy on 127.0.0.1 that a test can cut and restore, to take a
//! database away from the product while it runs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running proxy. Dropping it stops it and closes every connection.
pub struct TcpProxy {
    address: SocketAddr,
    cut: Arc<AtomicBool>,
    /// Cancelled to close the connections open at a cut; replaced after.
    connections: Arc<std::sync::Mutex<CancellationToken>>,
    task: JoinHandle<()>,
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
        if let Ok(connections) = self.connections.lock() {
            connections.cancel();
        }
    }
}

impl TcpProxy {
    /// Starts forwarding connections on a free port to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let address = listener.local_addr().expect("proxy address");
        let cut = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(std::sync::Mutex::new(CancellationToken::new()));
        let task = tokio::spawn({
            let cut = cut.clone();
            let connections = connections.clone();
            async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    if cut.load(Ordering::SeqCst) {
                        // Refused: the connection closes at once.
                        drop(client);
                        continue;
                    }
                    let token = connections.lock().expect("proxy lock").clone();
                    tokio::spawn(forward(client, target, token));
                }
            }
        });
        Self {
            address,
            cut,
            connections,
            task,
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Closes every open connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        let mut connections = self.connections.lock().expect("proxy lock");
        connections.cancel();
        *connections = CancellationToken::new();
    }

    /// Accepts and forwards connections again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

async fn forward(mut client: TcpStream, target: SocketAddr, stop: CancellationToken) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = stop.cancelled() => {}
    }
}
