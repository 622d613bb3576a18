//! The orchestration layer: the one API that the Tauri app, the headless binary and the tests
//! drive. It owns the store, loads the active accounts, follows changes made beside it (the CLI
//! writing the same database) and publishes [`Event`]s.

mod ai_settings;
mod api_error;
mod audio;
mod call_settings;
mod calls;
mod channel;
mod events;
mod handoff;
mod incall;
mod outgoing;
mod status;
mod tones;
mod transfer;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{broadcast, Notify};

pub use ai_settings::{ai_answers_after, AiAnswer, AiPolicy, AiPolicyDraft, WorkingHours, WorkingHoursDraft};
pub use api_error::ApiError;
pub use audio::{AudioDevice, AudioDevices, AudioSettings};
pub use call_settings::CallSettings;
pub use calls::{CallCommand, CallView};
pub use channel::handle_line;
pub use events::{now_ms, Event, EventEnvelope, Registration, RegistrationState};
pub use outgoing::dial_target;
pub use status::{AccountStatus, DeskStatus, ErrorInfo, UiSettings};
pub use transfer::ReferPolicy;

use crate::sip::registration::{self, Policy, Update};
use crate::store::{self, Account, AccountDraft, InstanceLock, Store, StoreError};

/// How often a running desk looks for changes other processes made to the database.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// How a desk is opened.
#[derive(Debug, Clone)]
pub struct DeskOptions {
    /// The account database.
    pub db_path: PathBuf,
    /// The account defined by SIP_* variables, or why it is invalid.
    pub env_account: Result<Option<Account>, String>,
    /// Answer incoming calls at once (`sipdesk run --auto-answer`).
    pub auto_answer: bool,
    /// Where call audio comes from and goes to.
    pub audio: AudioChoice,
    /// When the AI answers incoming calls, whatever the saved policy says (`sipdesk run
    /// --ai-answer`); `None` follows the policy.
    pub ai_answer: Option<AiAnswer>,
}

/// Where call audio comes from and goes to (`sipdesk run --audio`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioChoice {
    /// Silence in, audio discarded.
    Null,
    /// The audio devices chosen in the settings (the system default unless one is chosen).
    Device,
    /// Play a WAV file to the far end and record what it sends.
    File {
        /// WAV played to the far end.
        input: PathBuf,
        /// WAV written with what the far end sends.
        output: PathBuf,
    },
}

impl DeskOptions {
    /// Database from `SIPDESK_DB`, else the OS data dir; the SIP_* environment account.
    pub fn from_env() -> DeskOptions {
        DeskOptions::with_db(None)
    }

    /// Like [`DeskOptions::from_env`] with an explicit database path (`--db`), which wins.
    pub fn with_db(db: Option<PathBuf>) -> DeskOptions {
        let env_account = store::env_account(|k| std::env::var(k).ok()).map_err(|e| e.to_string());
        DeskOptions {
            db_path: db.unwrap_or_else(default_db_path),
            env_account,
            auto_answer: false,
            audio: AudioChoice::Device,
            ai_answer: None,
        }
    }
}

/// `--db`, else `SIPDESK_DB`, else `~/.local/share/sipdesk/sipdesk.db` (the OS data dir).
pub fn default_db_path() -> PathBuf {
    match std::env::var_os("SIPDESK_DB") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => dirs::data_dir().unwrap_or_else(|| PathBuf::from(".")).join("sipdesk").join("sipdesk.db"),
    }
}

/// The running desk. Cheap to clone; every clone is the same desk.
#[derive(Clone)]
pub struct Desk {
    inner: Arc<Inner>,
}

struct Inner {
    db_path: PathBuf,
    store: Mutex<Result<Store, ErrorInfo>>,
    env_account: Result<Option<Account>, String>,
    events: broadcast::Sender<EventEnvelope>,
    loaded: Mutex<BTreeMap<i64, Loaded>>,
    instance: Mutex<Option<InstanceLock>>,
    instance_error: Mutex<Option<ErrorInfo>>,
    stop: Notify,
    /// Set by `start`: where registration tasks run. Unset, the desk only manages the store.
    runtime: Mutex<Option<tokio::runtime::Handle>>,
    registrations: Mutex<BTreeMap<i64, registration::Handle>>,
    generation: AtomicU64,
    policy: Policy,
    calls: calls::Calls,
    auto_answer: bool,
    audio: audio::CallAudio,
    /// `DeskOptions::ai_answer`.
    ai_answer: Option<AiAnswer>,
}

/// An account the desk has loaded, with its registration state.
struct Loaded {
    account: Account,
    registration: Registration,
    /// Which registration task speaks for it (an edit starts a new one).
    generation: u64,
}

impl Desk {
    /// Opens the desk. Never fails: a database that cannot be used is reported by
    /// [`Desk::desk_status`] and a `store_error` event, and the desk runs without it.
    pub fn open(opts: DeskOptions) -> Desk {
        let store = Store::open(&opts.db_path).map_err(|e| {
            tracing::error!("account database unavailable: {e}");
            ErrorInfo::from(&e)
        });
        if let Err(e) = &opts.env_account {
            tracing::error!("{e}");
        }
        let (events, _) = broadcast::channel(1024);
        let devices = store.as_ref().map(audio::load).unwrap_or_default();
        let audio = audio::CallAudio::new(opts.audio, devices, events.clone());
        Desk {
            inner: Arc::new(Inner {
                db_path: opts.db_path,
                store: Mutex::new(store),
                env_account: opts.env_account,
                events,
                loaded: Mutex::new(BTreeMap::new()),
                instance: Mutex::new(None),
                instance_error: Mutex::new(None),
                stop: Notify::new(),
                runtime: Mutex::new(None),
                registrations: Mutex::new(BTreeMap::new()),
                generation: AtomicU64::new(0),
                policy: Policy::from_env(),
                calls: calls::Calls::default(),
                auto_answer: opts.auto_answer,
                audio,
                ai_answer: opts.ai_answer,
            }),
        }
    }

    /// Becomes the registering instance for the database, loads every active account and
    /// starts following changes. Fails only when another instance holds the database.
    pub async fn start(&self) -> Result<(), ApiError> {
        let lock = InstanceLock::acquire(&self.inner.db_path).map_err(|e| {
            let err = ApiError::new("instance_running", e.to_string());
            *lock_or_recover(&self.inner.instance_error) =
                Some(ErrorInfo { code: "instance_running", message: err.message.clone() });
            err
        })?;
        *lock_or_recover(&self.inner.instance) = Some(lock);
        *lock_or_recover(&self.inner.runtime) = Some(tokio::runtime::Handle::current());
        if let Err(e) = &*self.store() {
            self.emit(Event::StoreError { code: e.code, message: e.message.clone() });
        }
        self.reload();
        let desk = self.clone();
        tokio::spawn(async move { desk.watch_database().await });
        Ok(())
    }

    /// Removes every binding (Expires: 0, all at once, within about 2 s), stops following the
    /// database and releases the instance lock.
    pub async fn shutdown(&self) {
        self.inner.stop.notify_waiters();
        self.inner.audio.meter(false);
        *lock_or_recover(&self.inner.runtime) = None;
        let handles: Vec<_> = std::mem::take(&mut *lock_or_recover(&self.inner.registrations)).into_values().collect();
        let mut set = tokio::task::JoinSet::new();
        for h in handles {
            set.spawn(h.stop());
        }
        while set.join_next().await.is_some() {}
        *lock_or_recover(&self.inner.instance) = None;
    }

    /// A receiver of every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<EventEnvelope> {
        self.inner.events.subscribe()
    }

    /// Every stored account with its registration state.
    pub fn accounts_list(&self) -> Result<Vec<AccountStatus>, ApiError> {
        let views = self.with_store(|s| s.list_accounts())?;
        let loaded = lock_or_recover(&self.inner.loaded);
        Ok(views
            .into_iter()
            .map(|v| {
                let r = registration_of(&loaded, v.id);
                AccountStatus::new(v, &r)
            })
            .collect())
    }

    /// Creates an account; returns its id.
    pub fn account_create(&self, draft: AccountDraft) -> Result<i64, ApiError> {
        let id = self.with_store_mut(|s| s.create_account(&draft))?;
        tracing::info!(account_id = id, "account created");
        self.reload();
        Ok(id)
    }

    /// Edits an account; an absent or empty password keeps the stored one.
    pub fn account_update(&self, id: i64, draft: AccountDraft) -> Result<(), ApiError> {
        self.with_store_mut(|s| s.update_account(id, &draft))?;
        tracing::info!(account_id = id, "account edited");
        self.reload();
        Ok(())
    }

    /// Removes an account.
    pub fn account_delete(&self, id: i64) -> Result<(), ApiError> {
        self.with_store_mut(|s| s.delete_account(id))?;
        tracing::info!(account_id = id, "account removed");
        self.reload();
        Ok(())
    }

    /// Activates or deactivates an account.
    pub fn account_set_active(&self, id: i64, active: bool) -> Result<(), ApiError> {
        self.with_store_mut(|s| s.set_active(id, active))?;
        self.reload();
        Ok(())
    }

    /// Makes an account the default for dialling.
    pub fn account_set_default(&self, id: i64) -> Result<(), ApiError> {
        self.with_store_mut(|s| s.set_default(id))?;
        self.emit(Event::AccountsChanged);
        Ok(())
    }

    /// Do-not-disturb: incoming calls are answered 486 Busy Here. Persisted.
    pub fn dnd(&self) -> bool {
        self.with_store(|s| s.setting("dnd")).ok().flatten().as_deref() == Some("on")
    }

    /// Turns do-not-disturb on or off.
    pub fn dnd_set(&self, on: bool) -> Result<(), ApiError> {
        self.with_store_mut(|s| s.set_setting("dnd", if on { "on" } else { "off" }))?;
        self.emit(Event::Dnd { on });
        Ok(())
    }

    /// The live calls.
    pub fn calls_list(&self) -> Vec<CallView> {
        self.inner.calls.views()
    }

    /// The latest calls, newest first.
    pub fn history_list(&self, limit: u32) -> Result<Vec<crate::store::CallRecord>, ApiError> {
        self.with_store(|s| s.history(limit.clamp(1, 1000)))
    }

    /// The account outgoing calls use by default: the stored default, else the environment's.
    pub fn default_account_id(&self) -> Option<i64> {
        self.with_store(|s| s.default_account_id()).ok().flatten().or_else(|| self.env_account_id())
    }

    fn env_account_id(&self) -> Option<i64> {
        self.inner.env_account.as_ref().ok().and_then(Option::as_ref).map(|a| a.id)
    }

    /// Sends a command to a live call.
    pub fn call_command(&self, call_id: &str, cmd: CallCommand) -> Result<(), ApiError> {
        let in_call = matches!(
            cmd,
            CallCommand::Hold
                | CallCommand::Resume
                | CallCommand::Dtmf(_)
                | CallCommand::Mute(_)
                | CallCommand::Transfer(_)
                | CallCommand::Handoff
                | CallCommand::TakeBack
        );
        if in_call {
            let state = self.calls_list().into_iter().find(|c| c.call_id == call_id).map(|c| c.state);
            if let Some(state) = state.filter(|s| !matches!(*s, "active" | "held" | "held_remote")) {
                return Err(ApiError::new("invalid_state", format!("the call is {state}, not connected")));
            }
        }
        if cmd == CallCommand::Handoff && !self.ai_policy().handoff_allowed {
            return Err(ApiError::new(
                "handoff_not_allowed",
                "the desk's policy does not allow handing calls to the AI",
            ));
        }
        if let CallCommand::Dtmf(d) = &cmd {
            let d = *d;
            if crate::media::rtp::TelephoneEvent::dtmf_code(d).is_none() {
                return Err(ApiError::new("invalid_argument", format!("{d:?} is not a DTMF digit (0-9 * # A-D)")));
            }
        }
        if self.inner.calls.command(call_id, cmd) {
            Ok(())
        } else {
            Err(ApiError::new("not_found", format!("no call {call_id:?}")))
        }
    }

    /// The database state, the default account and every account with its registration.
    pub fn desk_status(&self) -> DeskStatus {
        let store = self.store();
        let (store_error, stored, default_account_id) = match &*store {
            Ok(s) => (None, s.list_accounts().unwrap_or_default(), s.default_account_id().ok().flatten()),
            Err(e) => (Some(e.clone()), Vec::new(), None),
        };
        drop(store);
        let loaded = lock_or_recover(&self.inner.loaded);
        let mut accounts: Vec<AccountStatus> = Vec::new();
        if let Some(env) = self.inner.env_account.as_ref().ok().and_then(Option::as_ref) {
            accounts.push(AccountStatus::from_env(env, registration_of(&loaded, env.id)));
        }
        accounts.extend(stored.into_iter().map(|v| {
            let r = registration_of(&loaded, v.id);
            AccountStatus::new(v, &r)
        }));
        let env_error = self
            .inner
            .env_account
            .as_ref()
            .err()
            .map(|m| ErrorInfo { code: "env_account_invalid", message: m.clone() });
        DeskStatus {
            store_error,
            instance_error: lock_or_recover(&self.inner.instance_error).clone(),
            env_account_error: env_error,
            db_path: self.inner.db_path.display().to_string(),
            default_account_id: default_account_id.or_else(|| self.env_account_id()),
            accounts,
        }
    }

    /// The UI language setting and the system's language.
    pub fn ui_settings_get(&self) -> Result<UiSettings, ApiError> {
        let locale = self.with_store(|s| s.setting("locale"))?.unwrap_or_else(|| "system".into());
        Ok(UiSettings { locale, system_locale: UiSettings::system_locale() })
    }

    /// Sets the UI language: `system`, `en` or `zh-CN`.
    pub fn ui_settings_set_locale(&self, locale: String) -> Result<(), ApiError> {
        if !store::LOCALES.contains(&locale.as_str()) {
            return Err(ApiError::new("invalid_locale", format!("locale must be one of {:?}", store::LOCALES)));
        }
        self.with_store_mut(|s| s.set_setting("locale", &locale))?;
        Ok(())
    }

    /// Re-reads the active accounts and publishes what changed.
    fn reload(&self) {
        let stored = match &*self.store() {
            Ok(s) => s.active_accounts().unwrap_or_else(|e| {
                tracing::error!("cannot read accounts: {e}");
                Vec::new()
            }),
            Err(_) => Vec::new(),
        };
        let env = self.inner.env_account.clone().unwrap_or(None);
        let wanted: BTreeMap<i64, Account> =
            store::merge_env_account(stored, env).into_iter().map(|a| (a.id, a)).collect();
        let mut changes = Vec::new();
        let mut to_stop = Vec::new();
        let mut to_start = Vec::new();
        {
            let mut loaded = lock_or_recover(&self.inner.loaded);
            loaded.retain(|id, l| {
                let reason = match wanted.get(id) {
                    Some(a) if *a == l.account => return true,
                    Some(_) => "edited",
                    None => "deactivated",
                };
                changes.push(Event::AccountUnloaded { account_id: *id, reason });
                to_stop.push(*id);
                false
            });
            for (id, account) in wanted {
                if loaded.contains_key(&id) {
                    continue;
                }
                tracing::info!(
                    account_id = id,
                    server = %account.server(),
                    username = %account.username,
                    protocol = account.protocol.as_str(),
                    source = ?account.source,
                    "account loaded"
                );
                changes.push(Event::AccountLoaded {
                    account_id: id,
                    server: account.server(),
                    username: account.username.clone(),
                    protocol: account.protocol.as_str(),
                });
                let generation = self.inner.generation.fetch_add(1, Ordering::Relaxed) + 1;
                to_start.push((account.clone(), generation));
                loaded.insert(id, Loaded { account, registration: Registration::UNREGISTERED, generation });
            }
        }
        for event in changes {
            self.emit(event);
        }
        self.emit(Event::AccountsChanged);
        self.restart_registrations(to_stop, to_start);
    }

    /// Stops the tasks of unloaded accounts (each unregisters) and starts tasks for new ones.
    fn restart_registrations(&self, to_stop: Vec<i64>, to_start: Vec<(Account, u64)>) {
        let Some(rt) = lock_or_recover(&self.inner.runtime).clone() else { return };
        let mut running = lock_or_recover(&self.inner.registrations);
        for id in to_stop {
            if let Some(h) = running.remove(&id) {
                rt.spawn(h.stop());
            }
        }
        for (account, generation) in to_start {
            let id = account.id;
            let desk = self.clone();
            let on_update: registration::OnUpdate = Arc::new(move |u| desk.apply_update(u));
            let _guard = rt.enter();
            let desk = self.clone();
            let on_request: registration::OnRequest =
                Arc::new(move |account_id, ep, req| desk.on_sip_request(account_id, ep, req));
            running
                .insert(id, registration::spawn(account, generation, self.inner.policy.clone(), on_update, on_request));
        }
    }

    /// Records a registration task's state change and publishes it.
    fn apply_update(&self, u: Update) {
        {
            let mut loaded = lock_or_recover(&self.inner.loaded);
            match loaded.get_mut(&u.account_id) {
                Some(l) if l.generation == u.generation => l.registration = u.registration.clone(),
                // A task replaced by an edit: only its final "unregistered" is still news.
                Some(_) => return,
                None if u.registration.state != RegistrationState::Unregistered => return,
                None => {}
            }
        }
        if u.registration.state == RegistrationState::Registered && u.account_id != store::ENV_ACCOUNT_ID {
            if let Err(e) = self.with_store_mut(|s| s.record_registered(u.account_id)) {
                tracing::warn!(account_id = u.account_id, "cannot record the registration time: {}", e.message);
            }
        }
        tracing::info!(account_id = u.account_id, state = ?u.registration.state, expires = ?u.registration.expires, reason = ?u.registration.reason, "registration");
        self.emit(Event::Registration { account_id: u.account_id, registration: u.registration });
    }

    /// Polls `PRAGMA data_version` so edits by other processes take effect live.
    async fn watch_database(self) {
        let mut last = self.store().as_ref().ok().and_then(|s| s.data_version().ok());
        loop {
            tokio::select! {
                _ = self.inner.stop.notified() => return,
                _ = tokio::time::sleep(WATCH_INTERVAL) => {}
            }
            let now = blocking(|| self.store().as_ref().ok().and_then(|s| s.data_version().ok()));
            if now != last {
                tracing::info!("account database changed by another process; reloading");
                last = now;
                self.reload();
            }
        }
    }

    fn emit(&self, event: Event) {
        // No subscribers is fine: nobody is listening yet.
        let _ = self.inner.events.send(EventEnvelope::now(event));
    }

    fn store(&self) -> MutexGuard<'_, Result<Store, ErrorInfo>> {
        lock_or_recover(&self.inner.store)
    }

    fn with_store<T>(&self, f: impl FnOnce(&Store) -> Result<T, StoreError>) -> Result<T, ApiError> {
        blocking(|| match &*self.store() {
            Ok(s) => f(s).map_err(ApiError::from),
            Err(e) => Err(ApiError::new("store_unavailable", e.message.clone())),
        })
    }

    fn with_store_mut<T>(&self, f: impl FnOnce(&mut Store) -> Result<T, StoreError>) -> Result<T, ApiError> {
        blocking(|| match &mut *self.store() {
            Ok(s) => f(s).map_err(ApiError::from),
            Err(e) => Err(ApiError::new("store_unavailable", e.message.clone())),
        })
    }
}

/// Runs `f`, which may wait on the disk or on the store's lock, telling the runtime first so it
/// hands this worker's other tasks (the calls' RTP among them) to another thread. A SQLite
/// commit waits for fsync: on a busy machine one took 900 ms, and with the second worker
/// waiting on the store's lock meanwhile, every call's audio stopped that long.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

fn registration_of(loaded: &BTreeMap<i64, Loaded>, id: i64) -> Registration {
    loaded.get(&id).map(|l| l.registration.clone()).unwrap_or(Registration::UNREGISTERED)
}

/// A poisoned lock only means another thread panicked mid-update of plain data; keep going.
fn lock_or_recover<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
