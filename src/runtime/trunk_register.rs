//! `trunk.register: true`: keeps a registration with the carrier. Carries out the decisions of
//! the pure [`RegisterClient`] through the SIP task (responses come back by Call-ID, the way
//! outbound legs get theirs: [`SipCmd::AddLeg`]), publishes the state for `/healthz` and
//! `/metrics`, and logs each change once. On shutdown it removes the binding (`Expires: 0`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::sip::digest::Credentials;
use crate::sip::register_client::{RegAction, RegState, RegisterClient, RegisterParams};

use super::call_task::CallIn;
use super::sip_task::{random_tag, SipCmd};
use super::Shared;

/// How long shutdown waits for the un-REGISTER's answer.
const UNREGISTER_WAIT: Duration = Duration::from_secs(2);

/// The running registration: ask it to unregister and wait for it.
pub struct TrunkRegistration {
    unregister: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl TrunkRegistration {
    /// Removes the binding (waiting a moment for the registrar's answer) and stops.
    pub async fn stop(mut self) {
        if let Some(tx) = self.unregister.take() {
            let _ = tx.send(());
        }
        if tokio::time::timeout(UNREGISTER_WAIT, &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

/// Starts registering when the trunk asks for it.
pub fn spawn(shared: &Arc<Shared>) -> Option<TrunkRegistration> {
    let trunk = shared.config.trunk.as_ref()?;
    trunk.registration()?;
    shared
        .metrics
        .set_trunk_registration(Some(RegState::Trying));
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(run(shared.clone(), rx));
    Some(TrunkRegistration {
        unregister: Some(tx),
        task,
    })
}

async fn run(shared: Arc<Shared>, mut unregister: oneshot::Receiver<()>) {
    let Some(trunk) = shared.config.trunk.clone() else {
        return;
    };
    let (Some((user, domain)), Some(peer)) = (trunk.registration(), trunk.peer()) else {
        return;
    };
    // The SIP task publishes its channel once it runs.
    let (sip, local) = loop {
        if let Some(out) = shared.sip_out.get() {
            break out.clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Bound to every interface: the carrier must be given an address it can reach.
    let local = if local.ip().is_unspecified() {
        std::net::SocketAddr::new(shared.local_ip, local.port())
    } else {
        local
    };
    let tp = trunk.uri_params();
    let Ok(registrar) = rsip::Uri::try_from(format!("sip:{domain}{tp}").as_str()) else {
        tracing::warn!(%domain, "trunk registration: the registrar domain is not a SIP host");
        shared
            .metrics
            .set_trunk_registration(Some(RegState::Failed));
        return;
    };
    let call_id = format!("{}@switchboard", random_tag());
    let (tx, mut inbox) = mpsc::unbounded_channel();
    let _ = sip.send(SipCmd::AddLeg {
        call_id: call_id.clone(),
        tx,
    });
    let params = RegisterParams {
        registrar,
        aor: format!("sip:{user}@{domain}"),
        contact: format!("sip:{user}@{local}{tp}"),
        call_id: call_id.clone(),
        from_tag: random_tag(),
        expires: trunk.register_expires,
    };
    let credentials = trunk.credentials();
    let clock = shared.clock;
    let mut client = RegisterClient::new(params, clock.now());
    let mut last_status: Option<u16> = None;
    let mut stopping = false;
    loop {
        while let Some(action) = client.poll_action() {
            match action {
                RegAction::Send(request) => {
                    let _ = sip.send(SipCmd::Request {
                        call_id: call_id.clone(),
                        peer,
                        request: *request,
                    });
                }
                RegAction::State(state) => {
                    shared.metrics.set_trunk_registration(Some(state));
                    log_state(state, &user, &domain, last_status);
                }
            }
        }
        if client.is_done() {
            break;
        }
        let deadline = client.poll_timeout().map(|t| clock.to_tokio(t));
        tokio::select! {
            msg = inbox.recv() => match msg {
                Some(CallIn::Response(r)) => {
                    last_status = Some(r.status_code.code());
                    let creds = credentials.as_ref().map(|(u, p)| Credentials { username: u, password: p });
                    client.on_response(clock.now(), &r, creds.as_ref(), &random_tag());
                }
                Some(CallIn::RequestTimeout) => {
                    last_status = None;
                    client.request_timeout(clock.now());
                }
                Some(_) => {}
                None => break,
            },
            _ = &mut unregister, if !stopping => {
                stopping = true;
                client.unregister(clock.now());
            }
            _ = super::clock::sleep_until(deadline) => client.on_timeout(clock.now()),
        }
    }
    if stopping {
        tracing::info!(%domain, "trunk registration removed");
    }
    let _ = sip.send(SipCmd::CallEnded { call_id });
}

fn log_state(state: RegState, user: &str, domain: &str, status: Option<u16>) {
    match state {
        RegState::Registered => {
            tracing::info!(%user, %domain, "trunk registration: registered")
        }
        RegState::Trying => tracing::info!(%user, %domain, "trunk registration: trying"),
        RegState::Failed => tracing::warn!(
            %user,
            %domain,
            status = status.map_or_else(|| "no answer".to_string(), |s| s.to_string()),
            "trunk registration: failed; retrying with back-off"
        ),
    }
}
