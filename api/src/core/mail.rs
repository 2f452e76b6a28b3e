//! Sending mail over SMTP (`SORI_SMTP_URL`, `SORI_MAIL_FROM`) with lettre.
//! Requests never send: they write the mail outbox
//! ([`crate::effects::mail`]) and the API role's relay ([`crate::mail`])
//! sends with the [`Mailer`] here. Without these settings there is no
//! mailer: sign-up works, and email and password recovery answer 503.

use lettre::message::Mailbox;
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// How long one SMTP exchange may take before it counts as failed.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// Why mail could not be set up or sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MailError {
    /// `SORI_SMTP_URL` or `SORI_MAIL_FROM` is unusable (a start-up error).
    #[error("mail settings: {0}")]
    Settings(String),
    /// A recipient address lettre refuses (never retried).
    #[error("bad recipient address {0:?}")]
    Recipient(String),
    /// The server refused or could not be reached (retried).
    #[error("SMTP: {0}")]
    Smtp(String),
}

/// The SMTP transport and the sender address.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold the SMTP password: only the sender is shown.
        f.debug_struct("Mailer").field("from", &self.from).finish()
    }
}

impl Mailer {
    /// A mailer for `smtp_url` (`smtp://host:port` in the clear,
    /// `smtp://…?tls=required` for STARTTLS, `smtps://` for TLS; user and
    /// password in the URL) sending as `from` (`Sori <no-reply@example.com>`).
    pub fn new(smtp_url: &str, from: &str) -> Result<Self, MailError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url)
            .map_err(|e| MailError::Settings(format!("SORI_SMTP_URL: {e}")))?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        let from = from
            .parse()
            .map_err(|e| MailError::Settings(format!("SORI_MAIL_FROM {from:?}: {e}")))?;
        Ok(Self { transport, from })
    }

    /// Sends one plain-text mail; `Ok` once the server accepted it.
    pub async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), MailError> {
        let recipient: Mailbox = to
            .parse()
            .map_err(|_| MailError::Recipient(to.to_owned()))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(recipient)
            .subject(subject)
            .body(body.to_owned())
            .map_err(|e| MailError::Recipient(format!("{to}: {e}")))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| MailError::Smtp(e.to_string()))
    }
}

/// Whether `text` is an address mail can be sent to, in the stored form
/// (trimmed, lowercased): one `@`, a dotted domain, at most 254 bytes.
pub fn valid_address(text: &str) -> bool {
    text.len() <= 254
        && text.parse::<lettre::Address>().is_ok()
        && text
            .rsplit_once('@')
            .is_some_and(|(_, domain)| domain.contains('.'))
}
