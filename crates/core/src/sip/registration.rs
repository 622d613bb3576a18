//! One account's registration, kept alive for as long as the account is loaded.
//!
//! A task per account: connect, REGISTER (answering digest challenges), refresh at 85% of the
//! granted time (never later than 5 s before expiry), keep the path open (UDP: OPTIONS every
//! 25 s; TCP: RFC 5626 CRLF pings), and on any failure report it and retry with exponential
//! backoff and jitter (2 s doubling to 5 min), at once when the network comes back or the
//! connection drops. Stopping it removes the binding (Expires: 0) within 2 s.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rand::Rng;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::digest::{self, Answer, Challenge};
use super::endpoint::{Endpoint, FlowEvent};
use super::message;
use super::request::{self, RegisterParams};
use super::transaction::{self, Outcome, Timers};
use super::transport::{route_local_ip, Flow};
use crate::store::{Account, Protocol};

/// State of one account's registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistrationState {
    /// Not registered (not started yet, or removed).
    Unregistered,
    /// A REGISTER is under way.
    Registering,
    /// The registrar accepted our binding.
    Registered,
    /// Registration failed; `reason` says why.
    Failed,
}

/// Registration state with its details, as shown in status replies and events.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Registration {
    /// The state.
    pub state: RegistrationState,
    /// Seconds the registrar granted, when registered.
    pub expires: Option<u32>,
    /// Stable reason code when failed or unregistered by an event (e.g. `auth_rejected`).
    pub reason: Option<&'static str>,
}

impl Registration {
    /// The state of an account nothing has registered yet.
    pub const UNREGISTERED: Registration =
        Registration { state: RegistrationState::Unregistered, expires: None, reason: None };
}

/// Timing of the registration; [`Policy::default`] holds the values in the module docs.
#[derive(Debug, Clone)]
pub struct Policy {
    /// RFC 3261 timers.
    pub timers: Timers,
    /// Keepalive period.
    pub keepalive_interval: Duration,
    /// How long an OPTIONS keepalive may wait for any response.
    pub keepalive_timeout: Duration,
    /// First retry delay.
    pub backoff_min: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Wait after a rejection (wrong password) before trying again unasked.
    pub retry_after_rejection: Duration,
    /// Longest wait for the unregistering REGISTER on stop.
    pub unregister_timeout: Duration,
    /// How often a waiting registration checks whether the network came back.
    pub network_probe: Duration,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            timers: Timers::default(),
            keepalive_interval: Duration::from_secs(25),
            keepalive_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_secs(2),
            backoff_max: Duration::from_secs(300),
            retry_after_rejection: Duration::from_secs(30 * 60),
            unregister_timeout: Duration::from_secs(2),
            network_probe: Duration::from_secs(5),
        }
    }
}

impl Policy {
    /// The defaults, with the keepalive period from `SIPDESK_KEEPALIVE_SECS` (5..=300) if set:
    /// some NATs drop UDP mappings sooner than 25 s, and tests want a short period.
    pub fn from_env() -> Policy {
        let mut p = Policy::default();
        match std::env::var("SIPDESK_KEEPALIVE_SECS").ok().map(|v| v.trim().parse::<u64>()) {
            None => {}
            Some(Ok(s)) if (5..=300).contains(&s) => p.keepalive_interval = Duration::from_secs(s),
            Some(_) => {
                tracing::warn!("SIPDESK_KEEPALIVE_SECS must be a whole number of seconds from 5 to 300; using 25")
            }
        }
        p
    }
}

/// A state change reported to the desk.
#[derive(Debug, Clone)]
pub struct Update {
    /// The account.
    pub account_id: i64,
    /// Which incarnation of the account's task (an edit starts a new one).
    pub generation: u64,
    /// The new state.
    pub registration: Registration,
}

/// Receives every state change, in order, from the registration's own task.
pub type OnUpdate = Arc<dyn Fn(Update) + Send + Sync>;

/// Receives every request the server sends on the account's flow, with the endpoint to answer
/// on. It must not block: spawn what takes time.
pub type OnRequest = Arc<dyn Fn(i64, Endpoint, rsip::Request) + Send + Sync>;

/// The handler used when nobody else takes requests: OPTIONS 200, others 501.
pub fn answer_plainly() -> OnRequest {
    Arc::new(|_, ep, req| {
        tokio::spawn(async move { transaction::answer_plainly(&ep, &req).await });
    })
}

/// A running registration; [`Handle::stop`] unregisters and ends it.
pub struct Handle {
    cancel: CancellationToken,
    join: JoinHandle<()>,
    endpoint: tokio::sync::watch::Receiver<Option<Endpoint>>,
}

impl Handle {
    /// The account's current flow to its server, while it has one (calls go out on it).
    pub fn endpoint(&self) -> Option<Endpoint> {
        self.endpoint.borrow().clone()
    }

    /// Removes the binding (bounded by the policy's unregister timeout) and waits for the task.
    pub async fn stop(self) {
        self.cancel.cancel();
        if tokio::time::timeout(Duration::from_secs(3), self.join).await.is_err() {
            tracing::warn!("registration task did not stop in time");
        }
    }
}

/// Starts registering `account`; state changes go to `updates`.
pub fn spawn(account: Account, generation: u64, policy: Policy, updates: OnUpdate, on_request: OnRequest) -> Handle {
    let cancel = CancellationToken::new();
    let (endpoint_tx, endpoint) = tokio::sync::watch::channel(None);
    let engine = Engine {
        endpoint: endpoint_tx,
        call_id: format!("{}@sipdesk", request::token(24)),
        from_tag: request::token(12),
        cseq: 0,
        account,
        generation,
        policy,
        updates,
        on_request,
        cancel: cancel.clone(),
        last_state: None,
        local_port: None,
    };
    Handle { cancel, join: tokio::spawn(engine.run()), endpoint }
}

/// Why a session ended and when to try again.
#[derive(Debug, Clone, Copy)]
struct Fail {
    reason: &'static str,
    retry: Retry,
}

#[derive(Debug, Clone, Copy)]
enum Retry {
    Backoff,
    Now,
    After(Duration),
    Rejected,
    Never,
}

impl Fail {
    fn backoff(reason: &'static str) -> Fail {
        Fail { reason, retry: Retry::Backoff }
    }
}

struct Engine {
    endpoint: tokio::sync::watch::Sender<Option<Endpoint>>,
    account: Account,
    generation: u64,
    policy: Policy,
    updates: OnUpdate,
    on_request: OnRequest,
    cancel: CancellationToken,
    call_id: String,
    from_tag: String,
    cseq: u32,
    last_state: Option<Registration>,
    /// The UDP port of the last flow, reused so the Contact stays the same.
    local_port: Option<u16>,
}

/// What a live session needs to keep.
struct Session {
    ep: Endpoint,
    events: tokio::sync::mpsc::Receiver<FlowEvent>,
    /// Pongs received on this flow (TCP keepalive).
    pongs: u64,
    public: SocketAddr,
}

impl Engine {
    async fn run(mut self) {
        let mut delay = self.policy.backoff_min;
        let mut last_local: Option<IpAddr> = None;
        loop {
            self.report(RegistrationState::Registering, None, None);
            let fail = match self.session(&mut delay, &mut last_local).await {
                None => {
                    self.report(RegistrationState::Unregistered, None, Some("shutdown"));
                    return;
                }
                Some(f) => f,
            };
            self.report(RegistrationState::Failed, None, Some(fail.reason));
            let wait = match fail.retry {
                Retry::Now => Duration::ZERO,
                Retry::Backoff => {
                    let d = jitter(delay);
                    delay = (delay * 2).min(self.policy.backoff_max);
                    d
                }
                Retry::After(d) => d.min(Duration::from_secs(3600)),
                Retry::Rejected => self.policy.retry_after_rejection,
                Retry::Never => Duration::MAX,
            };
            match fail.retry {
                Retry::Never => tracing::warn!(
                    account_id = self.account.id,
                    reason = fail.reason,
                    "registration failed; not retrying until the account is changed"
                ),
                _ => tracing::info!(
                    account_id = self.account.id,
                    reason = fail.reason,
                    "registration failed; retrying in {:.1} s",
                    wait.as_secs_f32()
                ),
            }
            if !self.wait_or_network_back(wait, last_local).await {
                self.report(RegistrationState::Unregistered, None, Some("shutdown"));
                return;
            }
        }
    }

    /// Waits `wait`, returning early when the local route to the server changes or appears.
    /// False when stopped.
    async fn wait_or_network_back(&self, wait: Duration, last_local: Option<IpAddr>) -> bool {
        let until =
            Instant::now().checked_add(wait).unwrap_or_else(|| Instant::now() + Duration::from_secs(86400 * 365));
        loop {
            let probe = Instant::now() + self.policy.network_probe;
            tokio::select! {
                _ = self.cancel.cancelled() => return false,
                _ = sleep_until(until) => return true,
                _ = sleep_until(probe), if probe < until => {
                    let Some(remote) = self.resolve().await else { continue };
                    let now = route_local_ip(remote).await;
                    if now.is_some() && now != last_local {
                        tracing::info!(account_id = self.account.id, "network changed; registering again now");
                        return true;
                    }
                }
            }
        }
    }

    /// One connection's life. None when stopped (after unregistering).
    async fn session(&mut self, delay: &mut Duration, last_local: &mut Option<IpAddr>) -> Option<Fail> {
        let Some(remote) = self.resolve().await else { return Some(Fail::backoff("unreachable")) };
        if remote.is_ipv6() {
            // rsip 0.4 cannot parse IPv6 references ([::1]:5060) in Via, Contact or URIs.
            tracing::error!(account_id = self.account.id, %remote, "IPv6 SIP servers are not supported yet; use an IPv4 address or a name that resolves to one");
            return Some(Fail { reason: "server_error", retry: Retry::Never });
        }
        *last_local = route_local_ip(remote).await;
        let (flow, rx) = tokio::select! {
            _ = self.cancel.cancelled() => return None,
            r = Flow::connect(self.account.protocol, remote, self.local_port) => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(account_id = self.account.id, %remote, "cannot reach the SIP server: {e}");
                    return Some(Fail::backoff("unreachable"));
                }
            },
        };
        let public = flow.local();
        if flow.proto() == Protocol::Udp {
            self.local_port = Some(public.port());
        }
        let (ep, events) = Endpoint::start(flow, rx);
        self.endpoint.send_replace(Some(ep.clone()));
        let mut s = Session { ep, events, pongs: 0, public };
        let result = self.registered_loop(&mut s, delay).await;
        self.endpoint.send_replace(None);
        s.ep.flow().close().await;
        result
    }

    async fn registered_loop(&mut self, s: &mut Session, delay: &mut Duration) -> Option<Fail> {
        let interval = self.account.register_interval;
        let cancel = self.cancel.clone();
        let mut granted = tokio::select! {
            _ = cancel.cancelled() => return None,
            r = self.register(s, interval) => match r { Ok(g) => g, Err(f) => return Some(f) },
        };
        *delay = self.policy.backoff_min;
        self.report(RegistrationState::Registered, Some(granted), None);
        let mut refresh_at = Instant::now() + refresh_delay(granted);
        let mut keepalive_at = Instant::now() + self.policy.keepalive_interval;
        let mut ping_pongs: Option<u64> = None;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => {
                    let _ = tokio::time::timeout(self.policy.unregister_timeout, self.register(s, 0)).await;
                    return None;
                }
                _ = sleep_until(refresh_at) => {
                    granted = match self.register(s, interval).await { Ok(g) => g, Err(f) => return Some(f) };
                    self.report(RegistrationState::Registered, Some(granted), None);
                    refresh_at = Instant::now() + refresh_delay(granted);
                }
                _ = sleep_until(keepalive_at) => {
                    if let Some(f) = self.keepalive(s, &mut ping_pongs).await {
                        return Some(f);
                    }
                    keepalive_at = Instant::now() + self.policy.keepalive_interval;
                }
                ev = s.events.recv() => match ev {
                    None | Some(FlowEvent::Closed(_)) => {
                        let why = match ev { Some(FlowEvent::Closed(r)) => r, _ => "flow ended".into() };
                        tracing::warn!(account_id = self.account.id, "SIP connection lost: {why}");
                        return Some(Fail { reason: "network_down", retry: Retry::Now });
                    }
                    Some(FlowEvent::Unreachable) => return Some(Fail::backoff("unreachable")),
                    Some(FlowEvent::Pong) => s.pongs += 1,
                    Some(FlowEvent::Request(req)) => (self.on_request)(self.account.id, s.ep.clone(), req),
                },
            }
        }
    }

    /// Checks the route and the path to the server; Some when the registration must restart.
    async fn keepalive(&mut self, s: &mut Session, ping_pongs: &mut Option<u64>) -> Option<Fail> {
        let flow = s.ep.flow().clone();
        match route_local_ip(flow.remote()).await {
            None => return Some(Fail::backoff("network_down")),
            Some(ip) if ip != flow.local().ip() => {
                tracing::info!(account_id = self.account.id, "local address changed; registering again");
                return Some(Fail { reason: "network_down", retry: Retry::Now });
            }
            Some(_) => {}
        }
        match flow.proto() {
            Protocol::Udp => {
                self.cseq += 1;
                let req =
                    request::options(&self.account, flow.local(), Protocol::Udp, self.cseq, &request::branch()).ok()?;
                match transaction::run(&s.ep, &req, self.policy.keepalive_timeout, &self.policy.timers).await {
                    // Any answer, even 404 or 405, proves the path is open.
                    Outcome::Final(_) => None,
                    Outcome::Timeout => Some(Fail { reason: "timeout", retry: Retry::Now }),
                    Outcome::Unreachable => Some(Fail::backoff("unreachable")),
                    Outcome::Closed(_) | Outcome::SendFailed(_) => Some(Fail::backoff("network_down")),
                }
            }
            Protocol::Tcp => {
                // A missing pong counts only once the server has shown it answers pings.
                // Pongs that arrived while we were busy are still queued: count them first.
                while let Ok(ev) = s.events.try_recv() {
                    match ev {
                        FlowEvent::Pong => s.pongs += 1,
                        FlowEvent::Request(req) => (self.on_request)(self.account.id, s.ep.clone(), req),
                        FlowEvent::Unreachable => return Some(Fail::backoff("unreachable")),
                        FlowEvent::Closed(_) => return Some(Fail { reason: "network_down", retry: Retry::Now }),
                    }
                }
                if let Some(before) = *ping_pongs {
                    if s.pongs > 0 && s.pongs == before {
                        return Some(Fail { reason: "timeout", retry: Retry::Now });
                    }
                }
                *ping_pongs = Some(s.pongs);
                flow.send(b"\r\n\r\n").await.err().map(|_| Fail { reason: "network_down", retry: Retry::Now })
            }
        }
    }

    /// One REGISTER exchange, challenges included; returns the granted expiry.
    async fn register(&mut self, s: &mut Session, expires: u32) -> Result<u32, Fail> {
        let mut expires = expires;
        let mut challenge: Option<(Challenge, bool)> = None;
        let (mut nc, mut sent_credentials, mut stale, mut too_brief, mut moved) = (0u32, false, 0, 0, 0);
        let uri = request::register_uri(&self.account);
        let auth_user = if self.account.auth_username.is_empty() {
            self.account.username.clone()
        } else {
            self.account.auth_username.clone()
        };
        loop {
            self.cseq += 1;
            let flow = s.ep.flow().clone();
            let contact = request::contact_uri(&self.account, s.public, flow.proto());
            let auth = challenge.as_ref().map(|(c, proxy)| {
                nc += 1;
                let cnonce = request::token(16);
                let a = Answer {
                    username: &auth_user,
                    password: self.account.password.expose(),
                    method: "REGISTER",
                    uri: &uri,
                    nc,
                    cnonce: &cnonce,
                };
                (if *proxy { "Proxy-Authorization" } else { "Authorization" }, c.answer(&a))
            });
            let branch = request::branch();
            let params = RegisterParams {
                account: &self.account,
                local: flow.local(),
                proto: flow.proto(),
                contact: &contact,
                call_id: &self.call_id,
                from_tag: &self.from_tag,
                cseq: self.cseq,
                expires,
                branch: &branch,
                auth: auth.as_ref().map(|(n, v)| (*n, v.as_str())),
            };
            let req = request::register(&params).map_err(|e| {
                tracing::error!(account_id = self.account.id, "{e}");
                Fail { reason: "server_error", retry: Retry::Never }
            })?;
            let resp = match transaction::run(&s.ep, &req, self.policy.timers.timer_f, &self.policy.timers).await {
                Outcome::Final(r) => r,
                Outcome::Timeout => return Err(Fail::backoff("timeout")),
                Outcome::Unreachable => return Err(Fail::backoff("unreachable")),
                Outcome::Closed(_) => return Err(Fail { reason: "network_down", retry: Retry::Now }),
                Outcome::SendFailed(e) => {
                    tracing::warn!(account_id = self.account.id, "cannot send REGISTER: {e}");
                    return Err(Fail::backoff("network_down"));
                }
            };
            let code = resp.status_code.code();
            // rport/received (RFC 3581): bind the address the server sees, not our socket's.
            let (received, rport) = message::received_rport(&resp);
            let seen = SocketAddr::new(received.unwrap_or(s.public.ip()), rport.unwrap_or(s.public.port()));
            if seen != s.public && moved < 2 && expires > 0 {
                tracing::info!(account_id = self.account.id, from = %s.public, to = %seen, "server sees another address; fixing Contact");
                s.public = seen;
                moved += 1;
                if (200..300).contains(&code) {
                    continue;
                }
            }
            match code {
                200..=299 if expires == 0 => return Ok(0),
                200..=299 => return self.granted(&resp, &contact, expires),
                401 | 407 => {
                    let header = if code == 407 { "Proxy-Authenticate" } else { "WWW-Authenticate" };
                    let values = message::header_values(&resp, header, None);
                    let c = digest::strongest(values.iter().map(String::as_str)).map_err(|e| {
                        tracing::warn!(account_id = self.account.id, "cannot answer the server's challenge: {e}");
                        Fail::backoff("server_error")
                    })?;
                    if self.account.password.is_empty() {
                        return Err(Fail { reason: "no_password", retry: Retry::Never });
                    }
                    if c.stale {
                        stale += 1;
                        if stale > 2 {
                            return Err(Fail { reason: "auth_rejected", retry: Retry::Rejected });
                        }
                    } else if sent_credentials {
                        tracing::warn!(account_id = self.account.id, "the server rejected the credentials");
                        return Err(Fail { reason: "auth_rejected", retry: Retry::Rejected });
                    }
                    challenge = Some((c, code == 407));
                    nc = 0;
                    sent_credentials = true;
                }
                423 => {
                    too_brief += 1;
                    match message::seconds(&resp, "Min-Expires") {
                        Some(min) if min > expires && too_brief <= 2 => {
                            tracing::info!(
                                account_id = self.account.id,
                                min,
                                "interval too brief; asking for Min-Expires"
                            );
                            expires = min;
                            sent_credentials = false;
                        }
                        _ => return Err(Fail::backoff("server_error")),
                    }
                }
                403 => return Err(Fail { reason: "forbidden", retry: Retry::Never }),
                404 => return Err(Fail { reason: "not_found", retry: Retry::Never }),
                503 => {
                    return Err(match message::seconds(&resp, "Retry-After") {
                        Some(s) => Fail { reason: "server_error", retry: Retry::After(Duration::from_secs(s.into())) },
                        None => Fail::backoff("server_error"),
                    })
                }
                _ => {
                    tracing::warn!(account_id = self.account.id, code, "REGISTER failed");
                    return Err(Fail::backoff("server_error"));
                }
            }
        }
    }

    /// The expiry granted to our Contact in a 2xx: its `expires` parameter, else the Expires
    /// header. Our Contact missing from the list means we are not bound.
    fn granted(&self, resp: &rsip::Response, contact: &str, requested: u32) -> Result<u32, Fail> {
        let ours = rsip::Uri::try_from(contact).ok().map(|u| uri_key(&u));
        let bound = message::contacts(resp).into_iter().find(|c| Some(uri_key(&c.uri)) == ours);
        let Some(bound) = bound else {
            tracing::warn!(account_id = self.account.id, "the registrar's 200 does not list our Contact");
            return Err(Fail::backoff("server_error"));
        };
        let granted = bound.expires().and_then(|e| e.seconds().ok()).or_else(|| message::seconds(resp, "Expires"));
        Ok(match granted {
            Some(0) => return Err(Fail::backoff("server_error")),
            Some(g) => g,
            None => {
                tracing::warn!(
                    account_id = self.account.id,
                    "the registrar's 200 gives no expiry; assuming the {requested} s asked for"
                );
                requested
            }
        })
    }

    async fn resolve(&self) -> Option<SocketAddr> {
        let (host, port) = target(&self.account);
        let found = tokio::net::lookup_host((host.as_str(), port)).await.map(|mut a| a.next());
        match found {
            Ok(addr) => addr,
            Err(e) => {
                tracing::warn!(account_id = self.account.id, host = %host, "cannot resolve the SIP server: {e}");
                None
            }
        }
    }

    fn report(&mut self, state: RegistrationState, expires: Option<u32>, reason: Option<&'static str>) {
        let registration = Registration { state, expires, reason };
        if self.last_state.as_ref() == Some(&registration) && state != RegistrationState::Registered {
            return;
        }
        self.last_state = Some(registration.clone());
        (self.updates)(Update { account_id: self.account.id, generation: self.generation, registration });
    }
}

/// Where REGISTERs go: the outbound proxy if set, else the server.
fn target(a: &Account) -> (String, u16) {
    if a.outbound_proxy.is_empty() {
        return (a.server_host.clone(), a.server_port);
    }
    let p = a.outbound_proxy.trim_start_matches("sip:");
    let p = p.split(';').next().unwrap_or(p);
    if let Some(rest) = p.strip_prefix('[') {
        let (h, after) = rest.split_once(']').unwrap_or((rest, ""));
        return (h.to_string(), after.trim_start_matches(':').parse().unwrap_or(5060));
    }
    match p.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') => (h.to_string(), port.parse().unwrap_or(5060)),
        _ => (p.to_string(), 5060),
    }
}

fn uri_key(u: &rsip::Uri) -> (Option<String>, String, u16) {
    let port = u.host_with_port.port.as_ref().map(|p| *p.value()).unwrap_or(5060);
    (u.user().map(str::to_string), u.host_with_port.host.to_string().to_ascii_lowercase(), port)
}

/// 85% of the granted time, never later than 5 s before expiry, at least 1 s.
pub fn refresh_delay(granted: u32) -> Duration {
    let g = f64::from(granted);
    Duration::from_secs_f64((g * 0.85).min(g - 5.0).max(1.0))
}

fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::thread_rng().gen_range(0.8..1.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_timing() {
        assert_eq!(refresh_delay(3600), Duration::from_secs(3060));
        assert_eq!(refresh_delay(20), Duration::from_secs(15));
        assert_eq!(refresh_delay(10), Duration::from_secs(5));
        assert_eq!(refresh_delay(3), Duration::from_secs(1));
    }

    #[test]
    fn proxy_targets() {
        let mut a = crate::store::env_account(|k| match k {
            "SIP_SERVER_HOST" => Some("pbx.example".into()),
            "SIP_USERNAME" => Some("1".into()),
            _ => None,
        })
        .unwrap()
        .unwrap();
        assert_eq!(target(&a), ("pbx.example".into(), 5060));
        a.outbound_proxy = "sip:proxy.example:5070;lr".into();
        assert_eq!(target(&a), ("proxy.example".into(), 5070));
        a.outbound_proxy = "[::1]:5080".into();
        assert_eq!(target(&a), ("::1".into(), 5080));
    }
}
