//! UDP sockets shared between a task and the media threads: non-blocking `std` sockets, read by
//! tokio only while a task reads them itself (an `AsyncFd` registration made and dropped on
//! demand), and a `recvmmsg` batch for the media threads.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// A socket's owner, kept alive by the registration so the descriptor stays open.
pub struct SocketFd<T>(Arc<T>);

impl<T: AsRef<UdpSocket>> SocketFd<T> {
    pub fn socket(&self) -> &UdpSocket {
        (*self.0).as_ref()
    }
}

impl<T: AsRef<UdpSocket>> AsRawFd for SocketFd<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.socket().as_raw_fd()
    }
}

/// Registers `owner`'s socket with tokio for reads. Dropping the result takes it out of the
/// reactor again, so datagrams nobody awaits wake nothing.
pub fn register_reads<T: AsRef<UdpSocket>>(
    owner: &Arc<T>,
) -> std::io::Result<AsyncFd<SocketFd<T>>> {
    // SAFETY: the descriptor is the socket owned by `T`, which the `SocketFd` keeps alive (an
    // `Arc`), so it stays open and the same for the `AsyncFd`'s whole lifetime.
    unsafe { AsyncFd::register_with_interest(SocketFd(owner.clone()), Interest::READABLE) }
        .map_err(std::io::Error::from)
}

/// The next datagram on a registered socket; never resolves while there is no registration.
pub async fn recv_registered<T: AsRef<UdpSocket>>(
    fd: &Option<AsyncFd<SocketFd<T>>>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    let Some(fd) = fd else {
        return std::future::pending().await;
    };
    loop {
        let mut ready = fd.readable().await?;
        if let Ok(r) = ready.try_io(|s| s.get_ref().socket().recv_from(buf)) {
            return r;
        }
    }
}

/// Datagrams read by one `recvmmsg`.
pub const BATCH: usize = 8;
/// Bigger than any RTP packet we take; a longer datagram is dropped as truncated.
const DATAGRAM: usize = 2048;

/// Buffers for one `recvmmsg`, reused for every call and tick (the media threads; `loadgen floor` reads the same way).
pub struct RecvBatch {
    bufs: Vec<[u8; DATAGRAM]>,
    // SAFETY of use: plain C structs, all-zero is a valid value.
    addrs: Vec<libc::sockaddr_storage>,
    lens: [usize; BATCH],
    truncated: [bool; BATCH],
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RecvBatch {
    pub fn new() -> Self {
        RecvBatch {
            bufs: vec![[0u8; DATAGRAM]; BATCH],
            // SAFETY: sockaddr_storage is a plain C struct for which all-zero is valid.
            addrs: vec![unsafe { std::mem::zeroed::<libc::sockaddr_storage>() }; BATCH],
            lens: [0; BATCH],
            truncated: [false; BATCH],
        }
    }

    /// Reads up to [`BATCH`] queued datagrams without blocking: how many were read (0 when none
    /// was waiting or the read failed).
    pub fn recv(&mut self, fd: RawFd) -> usize {
        let mut iovs: [libc::iovec; BATCH] = std::array::from_fn(|_| libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        });
        for (iov, buf) in iovs.iter_mut().zip(self.bufs.iter_mut()) {
            iov.iov_base = buf.as_mut_ptr().cast();
            iov.iov_len = DATAGRAM;
        }
        // SAFETY: mmsghdr is a plain C struct for which all-zero is valid (null pointers, 0
        // lengths); every field the kernel reads is set below.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for ((m, iov), addr) in msgs.iter_mut().zip(iovs.iter_mut()).zip(&mut self.addrs) {
            m.msg_hdr.msg_name = std::ptr::from_mut(addr).cast();
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            m.msg_hdr.msg_iov = std::ptr::from_mut(iov);
            m.msg_hdr.msg_iovlen = 1;
        }
        // A port-unreachable from an earlier send is reported once, by the next read; the
        // datagrams behind it are then read by trying again.
        for _ in 0..2 {
            // SAFETY: `msgs` holds BATCH headers, each pointing at one iovec over a live buffer
            // of DATAGRAM bytes and at a sockaddr_storage with its size; all outlive the call.
            let rc = unsafe {
                libc::recvmmsg(
                    fd,
                    msgs.as_mut_ptr(),
                    BATCH as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if rc > 0 {
                let n = usize::try_from(rc).unwrap_or(0).min(BATCH);
                for (i, m) in msgs.iter().enumerate().take(n) {
                    self.lens[i] = m.msg_len as usize;
                    self.truncated[i] = m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
                }
                return n;
            }
            let err = std::io::Error::last_os_error();
            if rc == 0 || err.raw_os_error() != Some(libc::ECONNREFUSED) {
                return 0;
            }
        }
        0
    }

    /// The `i`th datagram of the last read and who sent it.
    pub fn datagram(&self, i: usize) -> Option<(SocketAddr, &[u8])> {
        if *self.truncated.get(i)? {
            return None;
        }
        let from = socket_addr(self.addrs.get(i)?)?;
        let bytes = self.bufs.get(i)?.get(..*self.lens.get(i)?)?;
        Some((from, bytes))
    }
}

fn socket_addr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in here (family AF_INET); sockaddr_storage is
            // large and aligned enough for any socket address.
            let a = unsafe { &*std::ptr::from_ref(ss).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, a sockaddr_in6 (family AF_INET6).
            let a = unsafe { &*std::ptr::from_ref(ss).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}
