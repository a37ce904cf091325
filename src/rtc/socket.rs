//! The runtime each peer connection runs on: webrtc's own tokio runtime, except that its UDP
//! sockets take one datagram per receive instead of UDP GRO batches.
//!
//! webrtc sizes a connection's receive buffers by what the socket may coalesce: with GRO (on by
//! default on Linux) that is 64 × 1500 bytes, twice per connection (the socket's buffer and the
//! driver's burst buffer), about 190 KB of zeroed memory for a leg that receives one 172-byte
//! packet every 20 ms. GRO pays off for bulk data channels, which an audio leg has none of. With
//! GRO switched off on the socket, a receive never holds more than one datagram and the buffers
//! shrink to webrtc's plain size (2000 bytes each).

use std::fmt;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, RecvMeta, Runtime,
    TokioRuntime, Transmit,
};

/// The one runtime every connection shares (it holds no state of its own).
pub(super) fn runtime() -> Arc<dyn Runtime> {
    static RUNTIME: OnceLock<Arc<dyn Runtime>> = OnceLock::new();
    Arc::clone(RUNTIME.get_or_init(|| Arc::new(NoGro(TokioRuntime))))
}

#[derive(Debug)]
struct NoGro(TokioRuntime);

impl Runtime for NoGro {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.0.spawn(future)
    }

    fn spawn_reactor(
        &self,
        pool_size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        self.0.spawn_reactor(pool_size, future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        #[cfg(target_os = "linux")]
        let fd = std::os::fd::AsRawFd::as_raw_fd(&socket);
        // webrtc's wrapper switches GRO on; it is switched off again on the same descriptor.
        let inner = self.0.wrap_udp_socket(socket)?;
        #[cfg(target_os = "linux")]
        disable_gro(fd)?;
        Ok(Arc::new(OneDatagram(inner)))
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.0.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        self.0.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        self.0.resolve_host(host)
    }

    fn now(&self) -> Instant {
        self.0.now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.0.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.0.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.0.block_on(future)
    }

    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.0.yield_now()
    }

    fn name(&self) -> &'static str {
        "tokio-no-gro"
    }
}

#[cfg(target_os = "linux")]
fn disable_gro(fd: std::os::fd::RawFd) -> io::Result<()> {
    let off: libc::c_int = 0;
    // SAFETY: `fd` is the open socket `wrap_udp_socket` just wrapped (the wrapper owns it and is
    // alive); the option value is a c_int on our stack, its size passed alongside.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_UDP,
            libc::UDP_GRO,
            std::ptr::from_ref(&off).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    // A kernel without UDP_GRO never coalesces in the first place.
    if err.raw_os_error() == Some(libc::ENOPROTOOPT) {
        Ok(())
    } else {
        Err(err)
    }
}

/// webrtc's socket, reporting that a receive holds one datagram (true once GRO is off), so the
/// driver sizes its buffers for one.
struct OneDatagram(Arc<dyn AsyncUdpSocket>);

impl fmt::Debug for OneDatagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OneDatagram").field(&self.0).finish()
    }
}

impl AsyncUdpSocket for OneDatagram {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }

    fn poll_send(&self, cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        self.0.poll_send(cx, transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_recv(cx, bufs, meta)
    }

    fn max_gso_segments(&self) -> usize {
        self.0.max_gso_segments()
    }

    fn max_gro_segments(&self) -> usize {
        1
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn gro_enabled(fd: std::os::fd::RawFd) -> libc::c_int {
        let mut on: libc::c_int = -1;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `fd` is an open socket owned by the caller; `on` and `len` are on our stack.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_UDP,
                libc::UDP_GRO,
                std::ptr::from_mut(&mut on).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "getsockopt UDP_GRO");
        on
    }

    /// A socket that coalesced datagrams into the small buffer would lose the tail of each
    /// batch: the kernel must not coalesce, and the driver must size for one datagram.
    #[tokio::test]
    async fn leg_sockets_receive_one_datagram_at_a_time() {
        let plain = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let fd = std::os::fd::AsRawFd::as_raw_fd(&plain);
        let socket = runtime().wrap_udp_socket(plain).expect("wrap");
        assert_eq!(gro_enabled(fd), 0, "UDP_GRO still on");
        assert_eq!(socket.max_gro_segments(), 1);
    }
}
