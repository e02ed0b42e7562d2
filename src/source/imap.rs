//! An IMAP source: one mailbox of one account, read over TLS (implicit or STARTTLS; plain only when
//! configured), with async-imap on tokio and rustls (ring).
//!
//! Each connection logs in, selects the mailbox and compares its UIDVALIDITY with the position saved
//! in the database. It then repeats a round: find the messages to read (unseen ones, and every UID
//! past the saved last UID), fetch them by UID, hand them to the pipeline, wait for their
//! acknowledgements (fired after the commit), set `\Seen` and move them if configured, save the new
//! position; then IDLE until the server announces new mail (re-issued before the server's timeout),
//! or poll where IDLE is missing. A lost connection is retried with capped exponential backoff and
//! jitter. Nothing is marked seen that was not committed.

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_imap::extensions::idle::IdleResponse;
use async_imap::types::UnsolicitedResponse;
use async_imap::{Client, Session};
use chrono::Utc;
use futures_util::TryStreamExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_util::sync::CancellationToken;

use super::{Ack, Disposition, Incoming, OversizeId, Payload, Position, Positions, States};
use crate::config::{ImapAuth, ImapConfig, ImapSecurity, Secret};

/// Why a connection failed; the daemon logs it and reconnects.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    /// TCP, TLS or timeout.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The server refused a command, or broke the protocol.
    #[error(transparent)]
    Imap(#[from] async_imap::error::Error),
    /// The TLS settings are unusable (a bad CA file, a bad host name), or the handshake failed.
    #[error("tls: {0}")]
    Tls(String),
    /// The server refused the username or password.
    #[error("login as {user} refused: {detail} (check username and password_file)")]
    Login {
        /// The configured username.
        user: String,
        /// The server's answer (never the password).
        detail: String,
    },
    /// Something the server must offer is missing (STARTTLS, UIDVALIDITY).
    #[error("{0}")]
    Unsupported(String),
    /// The pipeline stopped before the position could be handed over.
    #[error("the pipeline stopped")]
    Stopped,
}

/// The connection under the IMAP client: plain TCP or TLS over it.
#[derive(Debug)]
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Accepts any server certificate (`tls_insecure = true`): for tests only.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The rustls client settings: the configured CA file, else the web's root certificates.
fn tls_config(cfg: &ImapConfig) -> Result<Arc<rustls::ClientConfig>, ImapError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ImapError::Tls(e.to_string()))?;
    let config = if cfg.tls_insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        match &cfg.ca_file {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| ImapError::Tls(format!("ca_file {}: {e}", path.display())))?;
                for cert in certs {
                    let cert = cert
                        .map_err(|e| ImapError::Tls(format!("ca_file {}: {e}", path.display())))?;
                    roots
                        .add(cert)
                        .map_err(|e| ImapError::Tls(format!("ca_file {}: {e}", path.display())))?;
                }
                if roots.is_empty() {
                    return Err(ImapError::Tls(format!(
                        "ca_file {} holds no certificate",
                        path.display()
                    )));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// The server's own words in an async-imap NO/BAD error (`code: None, info: Some("...")`).
fn server_text(detail: &str) -> String {
    detail
        .split_once("info: Some(\"")
        .and_then(|(_, rest)| rest.rsplit_once("\")"))
        .map_or_else(|| detail.to_owned(), |(text, _)| text.to_owned())
}

/// A failed TLS handshake, with what to do when the server's certificate is not trusted.
fn handshake_error(cfg: &ImapConfig, e: io::Error) -> ImapError {
    let cert = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_)));
    if !cert {
        return ImapError::Io(e);
    }
    let hint = match &cfg.ca_file {
        Some(p) => format!(
            "the certificate is not signed by ca_file {}, or does not name host {}",
            p.display(),
            cfg.host
        ),
        None => format!(
            "set ca_file to the CA that signed the server's certificate (a self-signed one: the \
             certificate itself), or check that it names host {}",
            cfg.host
        ),
    };
    ImapError::Tls(format!("handshake refused: {e}; {hint}"))
}

/// AUTHENTICATE PLAIN (RFC 4616): authorization id empty, then user and password.
struct PlainAuth<'a> {
    user: &'a str,
    password: &'a str,
}

impl async_imap::Authenticator for PlainAuth<'_> {
    type Response = Vec<u8>;

    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        let mut r = Vec::with_capacity(self.user.len() + self.password.len() + 2);
        r.push(0);
        r.extend_from_slice(self.user.as_bytes());
        r.push(0);
        r.extend_from_slice(self.password.as_bytes());
        r
    }
}

/// The wait before reconnection attempt `attempt` (0-based): doubling from `initial`, capped at
/// `max`, then scaled by a random factor in [0.5, 1.0] so that many clients do not retry in step.
pub fn backoff(
    initial: Duration,
    max: Duration,
    attempt: u32,
    rng: &mut fastrand::Rng,
) -> Duration {
    let doubled = initial.saturating_mul(1u32 << attempt.min(20));
    let capped = doubled.min(max);
    capped.mul_f64(0.5 + rng.f64() * 0.5)
}

/// Lists UIDs as an IMAP sequence set (`1:3,7,9:10`).
fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut iter = uids.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&end.wrapping_add(1)) {
            end = end.wrapping_add(1);
            iter.next();
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
    }
    out
}

type ImapSession = Session<Stream>;

/// Reads the server's first line (`* OK ...`).
async fn read_greeting(c: &mut Client<Stream>) -> Result<(), ImapError> {
    match c.read_response().await? {
        Some(_) => Ok(()),
        None => {
            Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed before the greeting").into())
        }
    }
}

/// One IMAP mailbox being read.
pub struct ImapSource {
    cfg: ImapConfig,
    secret: Secret,
    /// Where the writer saves this folder's position, in its batch transaction.
    positions: Positions,
    /// The position as last saved (read from the database at start, then kept here).
    saved: std::sync::Mutex<Option<Position>>,
    max_size: usize,
    /// `imap:<name>/<mailbox>`: the key of the saved position.
    key: Arc<str>,
}

impl fmt::Debug for ImapSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImapSource")
            .field("key", &self.key)
            .finish()
    }
}

/// What one connection ended with.
enum End {
    /// Cancelled: stop for good.
    Stopped,
}

impl ImapSource {
    /// Prepares a source starting from `saved` (the position in the database under
    /// [`ImapSource::key_of`]); nothing connects until [`ImapSource::run`].
    pub fn new(
        cfg: ImapConfig,
        secret: Secret,
        positions: Positions,
        saved: Option<Position>,
        max_size: usize,
    ) -> ImapSource {
        let key = ImapSource::key_of(&cfg).into();
        ImapSource {
            cfg,
            secret,
            positions,
            saved: std::sync::Mutex::new(saved),
            max_size,
            key,
        }
    }

    /// The key under which the position of `cfg`'s folder is saved: `imap:<name>/<mailbox>`.
    pub fn key_of(cfg: &ImapConfig) -> String {
        format!("imap:{}/{}", cfg.name, cfg.mailbox)
    }

    fn saved(&self) -> Option<Position> {
        *self
            .saved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Hands `pos` to the writer and remembers it for the next connection.
    async fn save(&self, pos: Position) -> Result<(), ImapError> {
        if !self.positions.save(&self.key, pos).await {
            return Err(ImapError::Stopped);
        }
        *self
            .saved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(pos);
        Ok(())
    }

    /// Reads the mailbox until `cancel` fires, reconnecting after every failure.
    pub async fn run(
        mut self,
        tx: mpsc::Sender<Incoming>,
        cancel: CancellationToken,
        states: States,
    ) {
        let mut rng = fastrand::Rng::new();
        let mut attempt: u32 = 0;
        loop {
            if cancel.is_cancelled() {
                break;
            }
            tracing::info!(
                imap = %self.cfg.name,
                host = %self.cfg.host,
                port = self.cfg.port(),
                user = %self.cfg.username,
                attempt = attempt + 1,
                "connecting"
            );
            states.set(&self.key, "connecting");
            let mut selected = false;
            match self.connection(&tx, &cancel, &mut selected, &states).await {
                Ok(End::Stopped) => break,
                Err(e) => {
                    states.set_connected(&self.key, false);
                    if cancel.is_cancelled() {
                        break;
                    }
                    states.reconnect(&self.key);
                    if selected {
                        attempt = 0;
                    }
                    if matches!(e, ImapError::Login { .. }) {
                        // The password may have been corrected since: read it again (a file or a
                        // credential; a variable cannot change under a running process).
                        match self.cfg.password() {
                            Ok(secret) => self.secret = secret,
                            Err(err) => tracing::warn!(
                                imap = %self.cfg.name,
                                error = %err,
                                "cannot read the password again; keeping the one read at start"
                            ),
                        }
                    }
                    let wait = backoff(
                        self.cfg.reconnect_initial.0,
                        self.cfg.reconnect_max.0,
                        attempt,
                        &mut rng,
                    );
                    attempt = attempt.saturating_add(1);
                    states.set(&self.key, format!("reconnecting: {e}"));
                    tracing::warn!(
                        imap = %self.cfg.name,
                        error = %e,
                        attempt,
                        retry_in = ?wait,
                        "connection failed; reconnecting"
                    );
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
        states.set(&self.key, "stopped");
        states.set_connected(&self.key, false);
        tracing::info!(imap = %self.cfg.name, "stopped");
    }

    /// Opens the TCP and TLS layers and reads the greeting.
    async fn connect(&self) -> Result<Client<Stream>, ImapError> {
        let host = self.cfg.host.as_str();
        let tcp = tokio::time::timeout(
            Duration::from_secs(30),
            TcpStream::connect((host, self.cfg.port())),
        )
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        tcp.set_nodelay(true)?;
        let tls = || -> Result<(TlsConnector, ServerName<'static>), ImapError> {
            let name = ServerName::try_from(host.to_owned())
                .map_err(|e| ImapError::Tls(format!("host {host}: {e}")))?;
            Ok((TlsConnector::from(tls_config(&self.cfg)?), name))
        };
        match self.cfg.security {
            ImapSecurity::Plain => {
                let mut c = Client::new(Stream::Plain(tcp));
                read_greeting(&mut c).await?;
                Ok(c)
            }
            ImapSecurity::Tls => {
                let (connector, name) = tls()?;
                let s = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| handshake_error(&self.cfg, e))?;
                let mut c = Client::new(Stream::Tls(Box::new(s)));
                read_greeting(&mut c).await?;
                Ok(c)
            }
            ImapSecurity::Starttls => {
                let mut c = Client::new(Stream::Plain(tcp));
                read_greeting(&mut c).await?;
                c.run_command_and_check_ok("STARTTLS", None)
                    .await
                    .map_err(|e| ImapError::Unsupported(format!("STARTTLS refused: {e}")))?;
                let Stream::Plain(tcp) = c.into_inner() else {
                    return Err(ImapError::Unsupported("STARTTLS over TLS".into()));
                };
                let (connector, name) = tls()?;
                let s = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| handshake_error(&self.cfg, e))?;
                Ok(Client::new(Stream::Tls(Box::new(s))))
            }
        }
    }

    async fn login(&self, client: Client<Stream>) -> Result<ImapSession, ImapError> {
        let user = self.cfg.username.as_str();
        let r = match self.cfg.auth {
            ImapAuth::Login => client.login(user, self.secret.expose()).await,
            ImapAuth::Plain => {
                let auth = PlainAuth {
                    user,
                    password: self.secret.expose(),
                };
                client.authenticate("PLAIN", auth).await
            }
        };
        // The error is the server's answer; it never contains the password.
        r.map_err(|(e, _)| match e {
            async_imap::error::Error::No(detail) | async_imap::error::Error::Bad(detail) => {
                ImapError::Login {
                    user: user.to_owned(),
                    detail: server_text(&detail),
                }
            }
            other => ImapError::Imap(other),
        })
    }

    /// One connection: login, select, then rounds and waits until cancelled or broken.
    async fn connection(
        &self,
        tx: &mpsc::Sender<Incoming>,
        cancel: &CancellationToken,
        selected: &mut bool,
        states: &States,
    ) -> Result<End, ImapError> {
        let client = self.connect().await?;
        let mut session = self.login(client).await?;
        let caps = session.capabilities().await?;
        let can_idle = caps.has_str("IDLE");
        let can_move = caps.has_str("MOVE");
        let can_uidplus = caps.has_str("UIDPLUS");
        for dest in [&self.cfg.processed_mailbox, &self.cfg.quarantine_mailbox]
            .into_iter()
            .flatten()
        {
            // Fails harmlessly when the folder exists; a real problem shows at the first MOVE.
            let _ = session.create(dest).await;
        }
        let mailbox = session.select(&self.cfg.mailbox).await?;
        let uidvalidity = mailbox.uid_validity.ok_or_else(|| {
            ImapError::Unsupported(format!("{} has no UIDVALIDITY", self.cfg.mailbox))
        })?;
        *selected = true;
        let mut pos = match self.saved() {
            Some(p) if p.uidvalidity == uidvalidity => p,
            Some(p) => {
                tracing::warn!(
                    imap = %self.cfg.name,
                    old = p.uidvalidity,
                    new = uidvalidity,
                    "UIDVALIDITY changed: reading the whole mailbox again (already recorded messages count once)"
                );
                let p = Position {
                    uidvalidity,
                    last_uid: 0,
                };
                self.save(p).await?;
                p
            }
            None => Position {
                uidvalidity,
                last_uid: 0,
            },
        };
        tracing::info!(
            imap = %self.cfg.name,
            mailbox = %self.cfg.mailbox,
            uidvalidity,
            last_uid = pos.last_uid,
            exists = mailbox.exists,
            idle = can_idle && self.cfg.idle,
            "selected"
        );
        states.set(&self.key, "connected");
        states.set_connected(&self.key, true);

        loop {
            let found = self
                .round(&mut session, &mut pos, tx, cancel, can_move, can_uidplus)
                .await?;
            if cancel.is_cancelled() {
                let _ = session.logout().await;
                return Ok(End::Stopped);
            }
            // Something may have arrived while the round ran: read again before waiting.
            let mut pending = found > 0;
            while let Ok(u) = session.unsolicited_responses.try_recv() {
                if matches!(
                    u,
                    UnsolicitedResponse::Exists(_) | UnsolicitedResponse::Recent(_)
                ) {
                    pending = true;
                }
            }
            if pending {
                continue;
            }
            if can_idle && self.cfg.idle {
                let mut handle = session.idle();
                handle.init().await?;
                states.idle(&self.key, Utc::now());
                let (wait, stop) = handle.wait_with_timeout(self.cfg.idle_renew.0);
                let res = tokio::select! {
                    r = wait => r?,
                    () = cancel.cancelled() => IdleResponse::ManualInterrupt,
                };
                drop(stop);
                session = handle.done().await?;
                match res {
                    IdleResponse::NewData(_) => {
                        tracing::debug!(imap = %self.cfg.name, "IDLE: new data");
                    }
                    IdleResponse::Timeout => {
                        tracing::debug!(imap = %self.cfg.name, "IDLE renewed");
                    }
                    IdleResponse::ManualInterrupt => {}
                }
            } else {
                tokio::select! {
                    () = cancel.cancelled() => {}
                    () = tokio::time::sleep(self.cfg.poll_interval.0) => {}
                }
                session.noop().await?;
            }
        }
    }

    /// Reads everything pending once; returns how many messages were handed over.
    async fn round(
        &self,
        session: &mut ImapSession,
        pos: &mut Position,
        tx: &mpsc::Sender<Incoming>,
        cancel: &CancellationToken,
        can_move: bool,
        can_uidplus: bool,
    ) -> Result<usize, ImapError> {
        let mut wanted: BTreeSet<u32> = session.uid_search("UNSEEN").await?.into_iter().collect();
        let after = pos.last_uid.saturating_add(1);
        wanted.extend(
            session
                .uid_search(format!("UID {after}:*"))
                .await?
                .into_iter()
                // `n:*` always matches the last message, even below n.
                .filter(|u| *u >= after),
        );
        if wanted.is_empty() {
            return Ok(0);
        }
        let wanted: Vec<u32> = wanted.into_iter().collect();
        tracing::debug!(imap = %self.cfg.name, count = wanted.len(), "messages to read");
        let mut handed = 0;
        for chunk in wanted.chunks(self.cfg.fetch_batch.max(1)) {
            if cancel.is_cancelled() {
                break;
            }
            let acks = self
                .fetch_and_send(session, pos.uidvalidity, chunk, tx, cancel)
                .await?;
            handed += acks.len();
            // Wait for the commit of each message; a dropped sender means it was not committed.
            let mut processed = Vec::new();
            let mut quarantined = Vec::new();
            let mut unacked_min: Option<u32> = None;
            for (uid, rx) in acks {
                match rx.await {
                    Ok(Disposition::Processed) => processed.push(uid),
                    Ok(Disposition::Quarantine(_)) => quarantined.push(uid),
                    Err(_) => {
                        unacked_min = Some(unacked_min.map_or(uid, |m| m.min(uid)));
                    }
                }
            }
            let mut done: Vec<u32> = processed.iter().chain(&quarantined).copied().collect();
            done.sort_unstable();
            if !done.is_empty() {
                session
                    .uid_store(uid_set(&done), "+FLAGS.SILENT (\\Seen)")
                    .await?
                    .try_collect::<Vec<_>>()
                    .await?;
            }
            if let Some(dest) = &self.cfg.processed_mailbox {
                self.relocate(session, &processed, dest, can_move, can_uidplus)
                    .await?;
            }
            if let Some(dest) = &self.cfg.quarantine_mailbox {
                self.relocate(session, &quarantined, dest, can_move, can_uidplus)
                    .await?;
            }
            // Advance the position over the acknowledged UIDs below the first unacknowledged one.
            let new_last = done
                .iter()
                .copied()
                .filter(|u| unacked_min.is_none_or(|m| *u < m))
                .max();
            if let Some(last) = new_last
                && last > pos.last_uid
            {
                pos.last_uid = last;
                self.save(*pos).await?;
            }
            tracing::debug!(imap = %self.cfg.name, acked = done.len(), last_uid = pos.last_uid, "acknowledged");
            if unacked_min.is_some() {
                break;
            }
        }
        Ok(handed)
    }

    /// Fetches `uids` (bodies only for those within the size limit) and hands them over.
    async fn fetch_and_send(
        &self,
        session: &mut ImapSession,
        uidvalidity: u32,
        uids: &[u32],
        tx: &mpsc::Sender<Incoming>,
        cancel: &CancellationToken,
    ) -> Result<Vec<(u32, oneshot::Receiver<Disposition>)>, ImapError> {
        let set = uid_set(uids);
        // INTERNALDATE is when the server received the message: its arrival at this source.
        let now = Utc::now();
        let mut arrived = std::collections::HashMap::new();
        let sizes: Vec<(u32, u32)> = session
            .uid_fetch(&set, "(UID RFC822.SIZE INTERNALDATE)")
            .await?
            .try_collect::<Vec<_>>()
            .await?
            .iter()
            .filter_map(|f| {
                let uid = f.uid?;
                if let Some(at) = f.internal_date() {
                    arrived.insert(uid, at.with_timezone(&Utc));
                }
                Some((uid, f.size.unwrap_or(0)))
            })
            .collect();
        let mut small = Vec::new();
        let mut large = Vec::new();
        for (uid, size) in sizes {
            if usize::try_from(size).unwrap_or(usize::MAX) > self.max_size {
                large.push((uid, size));
            } else {
                small.push(uid);
            }
        }
        small.sort_unstable();
        let mut out = Vec::new();
        let mut items: Vec<(u32, Payload)> = large
            .into_iter()
            .map(|(uid, size)| {
                (
                    uid,
                    Payload::TooLarge {
                        size: usize::try_from(size).unwrap_or(usize::MAX),
                        id: OversizeId::Name(format!("{}/{uidvalidity}/{uid}", self.key)),
                    },
                )
            })
            .collect();
        if !small.is_empty() {
            let fetched = session
                .uid_fetch(uid_set(&small), "(UID BODY.PEEK[])")
                .await?
                .try_collect::<Vec<_>>()
                .await?;
            for f in &fetched {
                if let (Some(uid), Some(body)) = (f.uid, f.body()) {
                    items.push((uid, Payload::Bytes(body.to_vec())));
                }
            }
        }
        items.sort_by_key(|(uid, _)| *uid);
        for (uid, payload) in items {
            let (ack_tx, ack_rx) = oneshot::channel();
            let incoming = Incoming {
                source: format!("{}/{uidvalidity}/{uid}", self.key),
                origin: self.key.clone(),
                // A server clock ahead of ours must not date a message in the future.
                received_at: arrived.get(&uid).map_or(now, |at| (*at).min(now)),
                payload,
                ack: Ack::Channel(ack_tx),
            };
            let sent = tokio::select! {
                biased;
                () = cancel.cancelled() => false,
                r = tx.send(incoming) => r.is_ok(),
            };
            if !sent {
                break;
            }
            out.push((uid, ack_rx));
        }
        Ok(out)
    }

    /// Moves messages to `dest`: MOVE when offered, else COPY, `\Deleted` and (UID) EXPUNGE.
    async fn relocate(
        &self,
        session: &mut ImapSession,
        uids: &[u32],
        dest: &str,
        can_move: bool,
        can_uidplus: bool,
    ) -> Result<(), ImapError> {
        if uids.is_empty() {
            return Ok(());
        }
        let mut sorted = uids.to_vec();
        sorted.sort_unstable();
        let set = uid_set(&sorted);
        if can_move {
            session.uid_mv(&set, dest).await?;
        } else {
            session.uid_copy(&set, dest).await?;
            session
                .uid_store(&set, "+FLAGS.SILENT (\\Deleted)")
                .await?
                .try_collect::<Vec<_>>()
                .await?;
            if can_uidplus {
                session
                    .uid_expunge(&set)
                    .await?
                    .try_collect::<Vec<_>>()
                    .await?;
            } else {
                session.expunge().await?.try_collect::<Vec<_>>().await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_compress_runs() {
        assert_eq!(uid_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(uid_set(&[5]), "5");
        assert_eq!(uid_set(&[]), "");
        assert_eq!(
            uid_set(&[u32::MAX - 1, u32::MAX]),
            format!("{}:{}", u32::MAX - 1, u32::MAX)
        );
    }

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let mut rng = fastrand::Rng::with_seed(7);
        let one = Duration::from_secs(1);
        let cap = Duration::from_secs(60);
        for attempt in 0..40 {
            let w = backoff(one, cap, attempt, &mut rng);
            let full = one.saturating_mul(1u32 << attempt.min(20)).min(cap);
            assert!(
                w <= full && w >= full / 2,
                "attempt {attempt}: {w:?} vs {full:?}"
            );
        }
        assert!(backoff(one, cap, 30, &mut rng) >= Duration::from_secs(30));
    }

    #[test]
    fn server_text_is_unwrapped() {
        assert_eq!(
            server_text(
                r#"code: None, info: Some("[AUTHENTICATIONFAILED] Authentication failed.")"#
            ),
            "[AUTHENTICATIONFAILED] Authentication failed."
        );
        assert_eq!(server_text("no"), "no");
    }

    #[test]
    fn plain_auth_response() {
        use async_imap::Authenticator;
        let mut a = PlainAuth {
            user: "u",
            password: "p",
        };
        assert_eq!(a.process(b""), b"\0u\0p".to_vec());
    }
}
