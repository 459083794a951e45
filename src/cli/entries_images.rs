//! Bank entries made from image files (hashed with every algorithm vigie holds).

use std::path::Path;

use crate::store::NewEntry;

use super::CliError;

pub fn entry_from_image(path: &Path) -> Result<NewEntry, CliError> {
    Err(CliError(format!("{}: image hashing is not available in this build yet", path.display())))
}
