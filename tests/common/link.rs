//! The softphone's SIP transport: a UDP socket, or a TCP connection to the server plus a listener
//! for connections the server opens back to our Contact. Reader threads turn bytes into `Msg`s.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::sipmsg::{stream_frame_len, Msg};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
}

/// Where a message came from, so a reply goes back the same way.
#[derive(Clone, Copy, Debug)]
pub enum Origin {
    Udp(SocketAddr),
    Tcp(usize),
}

/// Something the reader threads saw: a message, or bytes that did not parse (kept for diagnosis).
pub enum Incoming {
    Msg(Msg, Origin),
    Garbage(String),
}

type Conns = Arc<Mutex<Vec<(usize, TcpStream)>>>;

pub struct SipLink {
    pub transport: Transport,
    /// The address we put in Via and Contact.
    pub local: SocketAddr,
    pub server: SocketAddr,
    rx: Receiver<Incoming>,
    udp: Option<UdpSocket>,
    conns: Conns,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// Id of the TCP connection we opened to the server.
const MAIN_CONN: usize = 0;

impl SipLink {
    pub fn open(transport: Transport, server: SocketAddr) -> std::io::Result<SipLink> {
        Self::open_at(transport, server, "127.0.0.1")
    }

    /// As [`SipLink::open`], from another loopback address (127.0.0.2…): a second "source" for
    /// tests of per-address limits. UDP only.
    pub fn open_at(transport: Transport, server: SocketAddr, ip: &str) -> std::io::Result<SipLink> {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Conns = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        let (local, udp) = match transport {
            Transport::Udp => {
                let sock = UdpSocket::bind((ip, 0))?;
                sock.set_read_timeout(Some(Duration::from_millis(50)))?;
                let reader = sock.try_clone()?;
                let (tx, stop) = (tx.clone(), stop.clone());
                threads.push(std::thread::spawn(move || udp_reader(reader, tx, stop)));
                (sock.local_addr()?, Some(sock))
            }
            Transport::Tcp => {
                let listener = TcpListener::bind("127.0.0.1:0")?;
                listener.set_nonblocking(true)?;
                let local = listener.local_addr()?;
                let stream = TcpStream::connect_timeout(&server, Duration::from_secs(2))?;
                stream.set_nodelay(true)?;
                add_conn(MAIN_CONN, stream, &conns, &tx, &stop, &mut threads)?;
                let (tx, stop, conns) = (tx.clone(), stop.clone(), conns.clone());
                threads.push(std::thread::spawn(move || {
                    accept_loop(listener, conns, tx, stop)
                }));
                (local, None)
            }
        };
        Ok(SipLink {
            transport,
            local,
            server,
            rx,
            udp,
            conns,
            stop,
            threads,
        })
    }

    /// A listening end only (a carrier's proxy standing in for a trunk): UDP on a loopback port,
    /// or a TCP listener for the connections the server opens. Answer with [`SipLink::reply`].
    pub fn listen(transport: Transport) -> std::io::Result<SipLink> {
        let unused: SocketAddr = ([127, 0, 0, 1], 9).into();
        match transport {
            Transport::Udp => Self::open_at(Transport::Udp, unused, "127.0.0.1"),
            Transport::Tcp => {
                let (tx, rx) = mpsc::channel();
                let stop = Arc::new(AtomicBool::new(false));
                let conns: Conns = Arc::new(Mutex::new(Vec::new()));
                let listener = TcpListener::bind("127.0.0.1:0")?;
                listener.set_nonblocking(true)?;
                let local = listener.local_addr()?;
                let (t, st, c) = (tx.clone(), stop.clone(), conns.clone());
                let threads = vec![std::thread::spawn(move || accept_loop(listener, c, t, st))];
                Ok(SipLink {
                    transport,
                    local,
                    server: unused,
                    rx,
                    udp: None,
                    conns,
                    stop,
                    threads,
                })
            }
        }
    }

    /// Sends to the server (over our own TCP connection on TCP).
    pub fn send(&self, bytes: &[u8]) -> Result<(), String> {
        match &self.udp {
            Some(sock) => sock
                .send_to(bytes, self.server)
                .map(|_| ())
                .map_err(|e| format!("UDP send to {}: {e}", self.server)),
            None => self.send_conn(MAIN_CONN, bytes),
        }
    }

    pub fn reply(&self, origin: Origin, bytes: &[u8]) -> Result<(), String> {
        match (origin, &self.udp) {
            (Origin::Udp(addr), Some(sock)) => sock
                .send_to(bytes, addr)
                .map(|_| ())
                .map_err(|e| format!("UDP send to {addr}: {e}")),
            (Origin::Tcp(id), _) => self.send_conn(id, bytes),
            (Origin::Udp(_), None) => Err("UDP origin on a TCP link".into()),
        }
    }

    fn send_conn(&self, id: usize, bytes: &[u8]) -> Result<(), String> {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        let (_, stream) = conns
            .iter_mut()
            .find(|(i, _)| *i == id)
            .ok_or_else(|| format!("TCP connection {id} is gone"))?;
        stream
            .write_all(bytes)
            .map_err(|e| format!("TCP send on connection {id}: {e}"))
    }

    /// The next thing the readers saw, waiting until `deadline`.
    pub fn recv(&self, deadline: Instant) -> Option<Incoming> {
        let left = deadline.saturating_duration_since(Instant::now());
        self.rx.recv_timeout(left).ok()
    }

    /// Whether the server closed the TCP connection we opened (always false on UDP).
    pub fn main_conn_closed(&self) -> bool {
        self.udp.is_none()
            && !self
                .conns
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .any(|(i, _)| *i == MAIN_CONN)
    }
}

impl Drop for SipLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for (_, s) in self.conns.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn udp_reader(sock: UdpSocket, tx: Sender<Incoming>, stop: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::SeqCst) {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                let bytes = &buf[..n];
                // Keep-alives (CRLF) are not messages.
                if bytes.iter().all(|b| b.is_ascii_whitespace()) {
                    continue;
                }
                let item = match Msg::parse(bytes) {
                    Ok(m) => Incoming::Msg(m, Origin::Udp(from)),
                    Err(e) => Incoming::Garbage(e),
                };
                if tx.send(item).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn add_conn(
    id: usize,
    stream: TcpStream,
    conns: &Conns,
    tx: &Sender<Incoming>,
    stop: &Arc<AtomicBool>,
    threads: &mut Vec<JoinHandle<()>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_millis(50)))?;
    let reader = stream.try_clone()?;
    conns
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((id, stream));
    let (tx, stop, conns) = (tx.clone(), stop.clone(), conns.clone());
    threads.push(std::thread::spawn(move || {
        tcp_reader(id, reader, tx, stop, conns)
    }));
    Ok(())
}

fn accept_loop(listener: TcpListener, conns: Conns, tx: Sender<Incoming>, stop: Arc<AtomicBool>) {
    static NEXT_ID: AtomicUsize = AtomicUsize::new(1);
    let mut threads = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
                let _ = stream
                    .set_nonblocking(false)
                    .and_then(|_| add_conn(id, stream, &conns, &tx, &stop, &mut threads));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    for t in threads {
        let _ = t.join();
    }
}

fn tcp_reader(
    id: usize,
    mut stream: TcpStream,
    tx: Sender<Incoming>,
    stop: Arc<AtomicBool>,
    conns: Conns,
) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 8192];
    while !stop.load(Ordering::SeqCst) {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => break,
        }
        loop {
            match stream_frame_len(&buf) {
                Ok(Some(n)) => {
                    let frame: Vec<u8> = buf.drain(..n).collect();
                    let start = frame
                        .iter()
                        .position(|&b| b != b'\r' && b != b'\n')
                        .unwrap_or(frame.len());
                    if start == frame.len() {
                        continue;
                    }
                    let item = match Msg::parse(&frame[start..]) {
                        Ok(m) => Incoming::Msg(m, Origin::Tcp(id)),
                        Err(e) => Incoming::Garbage(e),
                    };
                    if tx.send(item).is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Incoming::Garbage(e));
                    buf.clear();
                    break;
                }
            }
        }
    }
    conns
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(i, _)| *i != id);
}
