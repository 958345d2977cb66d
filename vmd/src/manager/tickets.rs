//! One-shot console tickets (`vm.console_ticket`): a front end (vmd-web) asks for one with the
//! user's credentials, hands it to the browser, and presents it when the browser's WebSocket
//! arrives, so vmd still decides who gets the console without the front end keeping secrets.
//!
//! A ticket is 32 random bytes, kept in memory only as its SHA-256 digest with the account,
//! the VM (name and row id), the kind (serial or VNC) and an expiry of at most
//! [`CONSOLE_TICKET_SECS`]. Redeeming removes it whatever the outcome (single use), then
//! checks expiry, VM and kind, and reads the account again (it may have been removed or
//! demoted meanwhile). Outstanding tickets are bounded per account and in total; expired ones
//! are dropped whenever a ticket is issued.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use vm_proto::types::CONSOLE_TICKET_SECS;
use vm_proto::types::{AuthMethod, ConsoleKind, ConsoleTicket, ConsoleTicketRequest, Role};

use super::{now_secs, rfc3339, Error, Manager};
use crate::auth::policy::Action;
use crate::auth::{secret, Subject};

/// Outstanding tickets of one account at most.
const PER_ACCOUNT: usize = 32;
/// Outstanding tickets at most.
const TOTAL: usize = 4096;

#[derive(Debug, Clone)]
struct Entry {
    user_id: i64,
    user_name: String,
    vm: String,
    vm_id: i64,
    kind: ConsoleKind,
    expires: Instant,
}

/// The outstanding tickets.
#[derive(Debug, Default)]
pub struct Tickets {
    // std Mutex: map updates only, never held across an await.
    entries: Mutex<HashMap<Vec<u8>, Entry>>,
}

impl Tickets {
    fn insert(&self, digest: Vec<u8>, entry: Entry, now: Instant) -> Result<(), Error> {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, e| e.expires > now);
        let mine = map.values().filter(|e| e.user_id == entry.user_id).count();
        if mine >= PER_ACCOUNT || map.len() >= TOTAL {
            return Err(Error::TooManyTickets);
        }
        map.insert(digest, entry);
        Ok(())
    }

    fn take(&self, digest: &[u8]) -> Option<Entry> {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(digest)
    }
}

impl Manager {
    /// `vm.console_ticket`.
    pub async fn console_ticket(
        &self,
        subject: &Subject,
        req: ConsoleTicketRequest,
    ) -> Result<ConsoleTicket, Error> {
        let row = self.vm_for(subject, &req.vm, Action::Operate).await?;
        let hex =
            secret::random_hex().map_err(|e| Error::Invalid(format!("no randomness: {e}")))?;
        let ticket = format!("vmt_{hex}");
        let life = Duration::from_secs(
            self.config
                .auth
                .console_ticket_secs
                .clamp(1, CONSOLE_TICKET_SECS),
        );
        let entry = Entry {
            user_id: subject.user_id,
            user_name: subject.name.clone(),
            vm: row.name.clone(),
            vm_id: row.id,
            kind: req.kind,
            expires: Instant::now() + life,
        };
        self.tickets
            .insert(secret::digest(&ticket), entry, Instant::now())?;
        Ok(ConsoleTicket {
            ticket,
            vm: row.name,
            kind: req.kind,
            // Rounded up to the second: the printed time is never before the real expiry.
            expires_at: rfc3339(now_secs() + life.as_secs() as i64 + 1),
        })
    }

    /// The caller a ticket stands for, if it is valid for `kind` of VM `vm` now; it is used
    /// up either way.
    pub async fn redeem_ticket(
        &self,
        ticket: &str,
        vm: &str,
        kind: ConsoleKind,
    ) -> Result<Subject, Error> {
        let refused = || Error::Unauthenticated("invalid, used or expired console ticket".into());
        let entry = self
            .tickets
            .take(&secret::digest(ticket))
            .ok_or_else(refused)?;
        if entry.expires <= Instant::now() || entry.vm != vm || entry.kind != kind {
            return Err(refused());
        }
        let claimed = Subject {
            user_id: entry.user_id,
            name: entry.user_name,
            role: Role::User,
            via: AuthMethod::Ticket,
            peer_uid: None,
            token_id: None,
            expires_at: None,
        };
        let subject = self.refresh(&claimed).await.map_err(|_| refused())?;
        let row = self.vm_for(&subject, vm, Action::Operate).await?;
        if row.id != entry.vm_id {
            return Err(refused());
        }
        Ok(subject)
    }
}
