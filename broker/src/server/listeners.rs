//! The client listeners: one `SO_REUSEPORT` socket per shard.

use std::net::SocketAddr;

use anyhow::Context;

const LISTEN_BACKLOG: i32 = 1024;

/// One listener per shard on the same address; the kernel spreads incoming
/// connections across them. Port 0 is resolved by the first bind.
pub fn bind_listeners(addr: SocketAddr, count: usize) -> anyhow::Result<Vec<std::net::TcpListener>> {
    let mut addr = addr;
    let mut listeners = Vec::with_capacity(count);
    for _ in 0..count {
        let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)
            .context("creating a listening socket")?;
        socket.set_reuse_address(true).context("setting SO_REUSEADDR")?;
        socket.set_reuse_port(true).context("setting SO_REUSEPORT")?;
        socket.set_nonblocking(true).context("making the listener non-blocking")?;
        socket.bind(&addr.into()).with_context(|| format!("cannot listen on {addr}"))?;
        socket.listen(LISTEN_BACKLOG).with_context(|| format!("cannot listen on {addr}"))?;
        let listener: std::net::TcpListener = socket.into();
        addr = listener.local_addr().context("reading the bound address")?;
        listeners.push(listener);
    }
    Ok(listeners)
}
