//! Programs' working directories, and sweeping those a killed harness left.
//!
//! Each program runs in a fresh directory in the temporary directory,
//! `poetry-harness-program-XXXXXX`, removed when the program ends. A harness
//! killed with SIGKILL cannot remove its programs' directories, so beside
//! each one is an owner file, `poetry-harness-program-XXXXXX.owner`, on
//! which the harness holds an exclusive `flock` for the directory's life.
//! The kernel drops that lock when the harness dies, however it dies.
//!
//! The first program a harness starts sweeps the temporary directory: an
//! owner file it can lock has no living owner, so its directory and the
//! file go. A directory whose owner holds its lock stays, whatever process
//! or PID namespace the owner is in, and so does a directory with no owner
//! file (made by an older harness, or by someone else).
//!
//! The owner file is made under another name, locked, and only then
//! renamed beside the directory, so a sweep never sees an owner file that
//! is not locked yet.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// How every program's working directory is named.
pub const PREFIX: &str = "poetry-harness-program-";

/// The owner file of a directory: its path with this added.
const OWNER: &str = ".owner";

/// A program's working directory, removed on [`Workdir::close`] or drop.
#[derive(Debug)]
pub struct Workdir {
    dir: Option<tempfile::TempDir>,
    /// The owner file and its lock; `None` when it could not be made (a
    /// directory that is only not swept, should this harness be killed).
    owner: Option<(PathBuf, Flock<File>)>,
}

impl Workdir {
    /// A new directory in `base` (the temporary directory), with its
    /// owner file locked.
    pub fn create_in(base: &Path) -> io::Result<Workdir> {
        let dir = tempfile::Builder::new().prefix(PREFIX).tempdir_in(base)?;
        let owner = claim(dir.path()).ok();
        Ok(Workdir {
            dir: Some(dir),
            owner,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new(""), |d| d.path())
    }

    /// Removes the directory, then its owner file. If the directory cannot
    /// be removed whole, the owner file stays for a later sweep to retry.
    pub fn close(mut self) -> io::Result<()> {
        self.remove()
    }

    fn remove(&mut self) -> io::Result<()> {
        let Some(dir) = self.dir.take() else {
            return Ok(());
        };
        dir.close()?;
        if let Some((path, lock)) = self.owner.take() {
            let _ = std::fs::remove_file(&path);
            drop(lock);
        }
        Ok(())
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

/// Makes `dir`'s owner file, locked: under a name no sweep reads, then
/// renamed into place.
fn claim(dir: &Path) -> io::Result<(PathBuf, Flock<File>)> {
    let base = dir.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix("poetry-harness-owner-")
        .tempfile_in(base)?;
    let lock = Flock::lock(tmp.as_file().try_clone()?, FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| io::Error::from(e))?;
    let mut path = dir.as_os_str().to_owned();
    path.push(OWNER);
    let path = PathBuf::from(path);
    // The clone above shares the open file, and with it the lock.
    tmp.persist(&path).map_err(|e| e.error)?;
    Ok((path, lock))
}

/// Removes, from `base`, every program directory whose owner file nobody
/// holds (its harness died), with that file. Returns how many went.
/// Errors (another user's files, a directory being removed by another
/// sweep) leave the entry as it is.
pub fn sweep(base: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(base) else {
        return 0;
    };
    let mut swept = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(dir_name) = name
            .to_str()
            .filter(|n| n.starts_with(PREFIX))
            .and_then(|n| n.strip_suffix(OWNER))
        else {
            continue;
        };
        let Ok(file) = File::open(entry.path()) else {
            continue;
        };
        // Held: its harness is alive.
        let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
            continue;
        };
        let dir = base.join(dir_name);
        let gone = match std::fs::remove_dir_all(&dir) {
            Ok(()) => true,
            Err(e) => e.kind() == io::ErrorKind::NotFound,
        };
        if gone && std::fs::remove_file(entry.path()).is_ok() {
            swept += 1;
        }
        drop(lock);
    }
    swept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(base: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(base)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_dead_owners_directory_is_swept_a_living_ones_and_an_unowned_one_are_kept() {
        let base = tempfile::tempdir().unwrap();
        let live = Workdir::create_in(base.path()).unwrap();
        std::fs::write(live.path().join("file"), b"x").unwrap();
        let live_name = live
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        // A dead harness's: the owner file is there, and nobody holds it.
        let dead = base.path().join(format!("{PREFIX}dead"));
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join("left"), b"y").unwrap();
        std::fs::write(base.path().join(format!("{PREFIX}dead{OWNER}")), b"").unwrap();
        // An older harness's, or someone else's: no owner file.
        std::fs::create_dir(base.path().join(format!("{PREFIX}unowned"))).unwrap();

        assert_eq!(sweep(base.path()), 1);
        // Sorted as `names` sorts: the live name's random suffix may sort
        // after "unowned" (a test that failed one run in twelve).
        let mut kept = vec![
            live_name.clone(),
            format!("{live_name}{OWNER}"),
            format!("{PREFIX}unowned"),
        ];
        kept.sort();
        assert_eq!(names(base.path()), kept);
        assert_eq!(sweep(base.path()), 0, "a second sweep finds nothing");

        live.close().unwrap();
        assert_eq!(names(base.path()), [format!("{PREFIX}unowned")]);
    }

    #[test]
    fn the_owner_file_is_held_while_the_directory_lives() {
        let base = tempfile::tempdir().unwrap();
        let live = Workdir::create_in(base.path()).unwrap();
        let (owner, _) = live.owner.as_ref().expect("an owner file");
        // Another open file description, as another harness's sweep has.
        let other = File::open(owner).unwrap();
        assert!(Flock::lock(other, FlockArg::LockExclusiveNonblock).is_err());
        // Nothing else of ours in the directory: the temporary name is gone.
        assert_eq!(names(base.path()).len(), 2, "{:?}", names(base.path()));
    }
}
