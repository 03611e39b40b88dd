//! A rule's default subfolders (`Scans`, `Scans/Official`, `Photos`): made inside a record's
//! folder when Ferry first creates it, for people to fill. Once made they are the people's:
//! a subfolder deleted on purpose is not made again, unless the rule asks for that
//! (`recreate_subfolders`), and a failure to make them is retried by the next pass.

use crate::placement::RulePlacement;
use crate::sync_pass::PassOutcome;
use crate::{Engine, EngineError};
use ferry_dropbox::{DropboxClient, DropboxError};
use ferry_store::Binding;

impl Engine {
    /// Makes the binding's default subfolders if they are due (never made, or the rule
    /// recreates them). A dry run reports them as pending when never made.
    pub(crate) async fn default_subfolders(
        &self,
        client: &DropboxClient,
        binding: &Binding,
        placed: &RulePlacement,
        dry_run: bool,
        outcome: &mut PassOutcome,
    ) -> Result<(), EngineError> {
        let made = binding.id != 0 && self.store.subfolders_made(binding.id).await?;
        if dry_run {
            if !made {
                for sub in &placed.subfolders {
                    outcome
                        .pending
                        .push(format!("make folder {}/{sub}", binding.folder_display));
                }
            }
            return Ok(());
        }
        if made && !placed.recreate_subfolders {
            return Ok(());
        }
        for sub in &placed.subfolders {
            let path = format!("{}/{sub}", binding.folder_display);
            match client.create_folder(&path).await {
                Ok(_) => {}
                Err(DropboxError::Conflict(what)) if what == "a folder is at this path" => {}
                // A file where the folder would go is someone's: leave it.
                Err(DropboxError::Conflict(_)) => {
                    tracing::warn!(%path, "a file is where a default subfolder would go; left as is");
                }
                Err(e) => {
                    outcome.failure(&e);
                    return Ok(());
                }
            }
        }
        if !made {
            self.store.set_subfolders_made(binding.id).await?;
        }
        Ok(())
    }
}
