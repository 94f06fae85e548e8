//! Setting a whole data directory aside: what a node does with a directory it will not start on
//! (damaged, or left in the middle of rejoining), instead of deleting it.
//!
//! Owns: the name a kept directory gets (`<dir>.aside-<UTC time>-<why>`, next to the directory,
//! so an operator finds every kept copy of node `n1` with `ls -d <root>/n1.aside-*`), waiting until
//! sled has released the directory, and the rename itself (made durable in the parent directory).
//! Must never: delete, copy or change a byte inside the directory; rename it while a sled handle
//! holds it (sled releases its lock from a background thread after its last handle is dropped); or
//! reuse the name of an existing entry (a rename onto an empty directory would replace it).

use crate::{io_err, probe_lock, Error};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// What goes between the directory's name and the time in a kept copy's name.
pub const ASIDE_INFIX: &str = ".aside-";

/// Renames `dir` to `<dir>.aside-<UTC time of at>-<why>` once sled has released it, and returns
/// the new path. `why` is a short slug (letters, digits and `-`; anything else becomes `-`).
/// Fails with [`Error::Locked`] when a process still holds the directory.
pub fn set_aside(dir: &Path, why: &str, at: SystemTime) -> Result<PathBuf, Error> {
    probe_lock(dir)?;
    let name = dir.file_name().ok_or_else(|| Error::NotADataDir {
        dir: dir.to_path_buf(),
        why: "it has no name to set it aside under".into(),
    })?;
    let slug: String = why
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let base = format!(
        "{}{ASIDE_INFIX}{}-{slug}",
        name.to_string_lossy(),
        utc_stamp(at)
    );
    let parent = dir.parent().unwrap_or(Path::new("."));
    let target = free_name(parent, &base)?;
    std::fs::rename(dir, &target).map_err(|e| {
        io_err(
            &format!("move {} aside to {}", dir.display(), target.display()),
            e,
        )
    })?;
    // The rename is an entry of the parent directory: make it survive like the rest.
    if let Ok(d) = std::fs::File::open(parent) {
        let _ = d.sync_all();
    }
    debug_assert!(!dir.exists() && target.is_dir());
    Ok(target)
}

/// `base`, or `base.2`, `base.3`, ... : the first name no entry of `parent` has.
fn free_name(parent: &Path, base: &str) -> Result<PathBuf, Error> {
    for n in 1u32..10_000 {
        let candidate = if n == 1 {
            parent.join(base)
        } else {
            parent.join(format!("{base}.{n}"))
        };
        match std::fs::symlink_metadata(&candidate) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(candidate),
            Err(e) => return Err(io_err(&format!("look at {}", candidate.display()), e)),
            Ok(_) => {}
        }
    }
    Err(Error::Io(format!(
        "no free name to set a directory aside as {base} in {}",
        parent.display()
    )))
}

/// `YYYYMMDDTHHMMSS.nnnnnnnnnZ` (UTC, no `:` so the name is a plain path on every file system).
pub fn utc_stamp(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, of_day) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}.{:09}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        since.subsec_nanos()
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn utc_stamps_name_the_calendar_day_and_time() {
        let at = |secs: u64, nanos: u32| UNIX_EPOCH + Duration::new(secs, nanos);
        assert_eq!(utc_stamp(at(0, 0)), "19700101T000000.000000000Z");
        assert_eq!(utc_stamp(at(951_782_400, 5)), "20000229T000000.000000005Z");
        assert_eq!(
            utc_stamp(at(1_795_988_921, 123_456_789)),
            "20261129T214841.123456789Z"
        );
        assert_eq!(
            utc_stamp(at(4_102_444_799, 0)),
            "20991231T235959.000000000Z"
        );
    }

    #[test]
    fn a_directory_is_renamed_whole_under_a_free_name() {
        let root = tempfile::tempdir().unwrap();
        let at = UNIX_EPOCH + Duration::from_secs(1_795_988_921);
        let mut kept = vec![];
        for round in 0..3u8 {
            let dir = root.path().join("n1");
            std::fs::create_dir_all(dir.join("sub")).unwrap();
            std::fs::write(dir.join("db"), [round; 3]).unwrap();
            std::fs::write(dir.join("sub/x"), b"x").unwrap();
            kept.push(set_aside(&dir, "bad record!", at).unwrap());
            assert!(!dir.exists());
        }
        let names: Vec<String> = kept
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        let base = "n1.aside-20261129T214841.000000000Z-bad-record-";
        assert_eq!(
            names,
            vec![base.to_string(), format!("{base}.2"), format!("{base}.3")]
        );
        for (round, path) in kept.iter().enumerate() {
            assert_eq!(std::fs::read(path.join("db")).unwrap(), [round as u8; 3]);
            assert_eq!(std::fs::read(path.join("sub/x")).unwrap(), b"x");
        }
    }

    #[test]
    fn a_directory_sled_holds_is_not_moved() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("n1");
        let (st, _) = crate::Storage::open(&dir).unwrap();
        let r = set_aside(&dir, "held", SystemTime::now());
        assert!(matches!(r, Err(Error::Locked { .. })), "{r:?}");
        assert!(dir.join("db").exists());
        drop(st);
        let moved = set_aside(&dir, "held", SystemTime::now()).unwrap();
        assert!(moved.join("db").exists() && !dir.exists());
    }
}
