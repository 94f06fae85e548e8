//! Keeping a damaged directory as it was: sled rewrites its own index file (`snap.*`) on every
//! open, so `Storage::open` keeps the bytes of every small file of the directory before sled opens
//! it and, when it finds damage, puts them back after sled has let go.
//!
//! Owns: the saved copy of the directory's top-level files other than sled's `db` (its `conf`,
//! its `snap.*` index, the marker, the durable-progress record), and restoring it. sled's `db`
//! file and any subdirectory are not copied (they hold the whole log). A refused open writes no
//! record into them, but sled's own first open after a write session rewrites parts of `db`
//! itself; the records it holds stay the same (the node's damage test compares every record).
//! Must never: restore anything while sled still holds the directory, or touch a file of a
//! directory that was opened cleanly.

use crate::{io_err, probe_lock, Error};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The top-level files of a directory, other than `db`, as they were before sled opened it.
pub(crate) struct Kept {
    dir: PathBuf,
    files: BTreeMap<std::ffi::OsString, Vec<u8>>,
}

fn small_files(dir: &Path) -> Result<Vec<(std::ffi::OsString, PathBuf)>, Error> {
    let rd = std::fs::read_dir(dir).map_err(|e| io_err(&format!("list {}", dir.display()), e))?;
    let mut out = vec![];
    for ent in rd {
        let ent = ent.map_err(|e| io_err(&format!("list {}", dir.display()), e))?;
        let is_file = ent.file_type().is_ok_and(|t| t.is_file());
        if is_file && ent.file_name() != "db" {
            out.push((ent.file_name(), ent.path()));
        }
    }
    Ok(out)
}

impl Kept {
    /// Reads the files to keep.
    pub(crate) fn take(dir: &Path) -> Result<Kept, Error> {
        let mut files = BTreeMap::new();
        for (name, path) in small_files(dir)? {
            let bytes =
                std::fs::read(&path).map_err(|e| io_err(&format!("read {}", path.display()), e))?;
            files.insert(name, bytes);
        }
        Ok(Kept {
            dir: dir.to_path_buf(),
            files,
        })
    }

    /// After sled has released the directory: removes the top-level files sled created and
    /// writes back every kept file whose bytes changed. Returns `damage` (why the open was
    /// refused) unchanged, or an error saying also what could not be put back.
    pub(crate) fn restore(self, damage: Error) -> Error {
        if matches!(damage, Error::Locked { .. }) {
            return damage; // sled did not open it: nothing changed, and another process holds it
        }
        match self.put_back() {
            Ok(()) => damage,
            Err(e) => Error::Io(format!(
                "{damage}; and sled's own files could not be put back as they were: {e}"
            )),
        }
    }

    fn put_back(&self) -> Result<(), Error> {
        probe_lock(&self.dir)?;
        for (name, path) in small_files(&self.dir)? {
            let now = std::fs::read(&path).ok();
            match self.files.get(&name) {
                None => std::fs::remove_file(&path)
                    .map_err(|e| io_err(&format!("remove {}", path.display()), e))?,
                Some(bytes) if now.as_ref() != Some(bytes) => std::fs::write(&path, bytes)
                    .map_err(|e| io_err(&format!("write back {}", path.display()), e))?,
                Some(_) => {}
            }
        }
        for (name, bytes) in &self.files {
            let path = self.dir.join(name);
            if !path.exists() {
                std::fs::write(&path, bytes)
                    .map_err(|e| io_err(&format!("write back {}", path.display()), e))?;
            }
        }
        Ok(())
    }
}
