//! A MOCK of the customer's CRM receiving webhooks: a plain HTTP/1.1 listener on loopback that
//! records every POST and answers with the statuses it was told to, then 200.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Hook {
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Hook {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

pub struct Crm {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Hook>>>,
}

impl Crm {
    /// `statuses` are answered in order to successive POSTs; after them every answer is 200.
    pub fn start(statuses: &[u16]) -> Crm {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind crm");
        let addr = listener.local_addr().expect("crm addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let plan = Arc::new(Mutex::new(
            statuses.iter().copied().collect::<VecDeque<_>>(),
        ));
        let s = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let Some(hook) = read_request(&mut conn) else {
                    continue;
                };
                let status = plan
                    .lock()
                    .map(|mut p| p.pop_front())
                    .ok()
                    .flatten()
                    .unwrap_or(200);
                s.lock().expect("crm lock").push(hook);
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Crm { addr, seen }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    pub fn hooks(&self) -> Vec<Hook> {
        self.seen.lock().expect("crm lock").clone()
    }

    /// Waits until `n` POSTs of this event type arrived.
    pub fn wait_for(&self, event: &str, n: usize, timeout: Duration) -> Vec<Hook> {
        let deadline = Instant::now() + timeout;
        loop {
            let got: Vec<Hook> = self
                .hooks()
                .into_iter()
                .filter(|h| h.header("x-switchboard-event") == Some(event))
                .collect();
            if got.len() >= n {
                return got;
            }
            if Instant::now() > deadline {
                panic!(
                    "{event}: {} of {n} arrived; all: {:?}",
                    got.len(),
                    self.hooks()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn read_request(conn: &mut std::net::TcpStream) -> Option<Hook> {
    let mut r = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    Some(Hook { headers, body })
}
