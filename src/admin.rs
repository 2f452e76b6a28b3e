//! `sori admin grant|revoke HANDLE`: who may moderate. The admin role
//! (`users.role = 'admin'`) lets a user list open reports and resolve them;
//! it is set from the command line, by whoever runs the service, never
//! through the API.

use crate::cli::{AdminCommand, Settings};
use anyhow::bail;

/// Sets the role on the database `DATABASE_URL` names (migrating it first,
/// as `sori migrate` does) and says what it did on stdout; an unknown handle
/// is an error.
pub fn run(settings: &Settings, command: &AdminCommand) -> anyhow::Result<()> {
    let (handle, admin) = match command {
        AdminCommand::Grant { handle } => (handle, true),
        AdminCommand::Revoke { handle } => (handle, false),
    };
    crate::serve::runtime()?.block_on(async {
        let db = crate::serve::open_db(settings).await?;
        let changed = sori_api::social::set_admin(&db, handle, admin).await;
        db.close().await;
        if !changed? {
            bail!("no user with handle {handle}");
        }
        if admin {
            println!("{handle} is now an admin");
        } else {
            println!("{handle} is no longer an admin");
        }
        Ok(())
    })
}
