//! One writer per results folder: an advisory lock, as `git` (index.lock), `cargo` (the
//! `.package-cache` lock) and `dpkg` guard their state, but with `flock(2)` semantics (through
//! std's [`File::try_lock`]), so that the kernel drops a lock when its holder dies: a run killed
//! with SIGKILL never leaves a folder blocked.
//!
//! ```text
//! RUN_DIR/.lock                    the folder: exclusive for a whole run (`eval` without --shard,
//!                                  `compare`, `merge`), shared by the shard runs
//! RUN_DIR/.lock.shard-I-of-N       one shard: exclusive for the `eval --shard I/N` writing it
//! ```
//!
//! Shards of one run write their own files side by side (a Slurm array into one `--out`), so they
//! share the folder and each owns its shard; `merge` and a whole run need every shard finished.
//! A holder writes `PID COMMAND` into its lock file, which only serves the error message of a
//! process that finds the lock taken; the lock itself is the kernel's.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::eval::Shard;

/// The folder lock's file name.
const FOLDER_LOCK: &str = ".lock";

/// What a writer takes of a run folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The whole folder: an unsharded `eval`, `compare`, `merge`.
    Whole,
    /// One shard's files, beside other shards of the same run.
    Shard(Shard),
}

/// A held lock on a run folder; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct RunLock {
    /// The lock files held, with whether this process wrote its pid into each.
    files: Vec<(File, bool)>,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        for (file, wrote) in &mut self.files {
            // Clear our pid so a later message does not name a finished process; the kernel
            // releases the lock itself when the file closes.
            if *wrote {
                let _ = file.set_len(0);
            }
            let _ = file.unlock();
        }
    }
}

/// The lock file of one shard.
fn shard_lock_name(shard: Shard) -> String {
    format!("{FOLDER_LOCK}.shard-{}-of-{}", shard.index, shard.count)
}

/// Whether `name` is a lock file of this module (kept when a folder is cleared).
pub fn is_lock_file(name: &str) -> bool {
    name == FOLDER_LOCK || name.starts_with(".lock.shard-")
}

/// Takes `access` of the run folder `dir` (created if needed) without waiting; `command` is
/// written beside the pid for whoever finds the folder taken. A folder or shard held by another
/// process is an [`Error::FolderLocked`] naming it and the holder's pid.
pub fn lock(dir: &Path, access: Access, command: &str) -> Result<RunLock> {
    fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    let mut held = RunLock { files: Vec::new() };
    match access {
        Access::Whole => {
            let file = take(dir, FOLDER_LOCK, true, None)?;
            held.files.push((file, false));
            stamp(&mut held.files[0], dir.join(FOLDER_LOCK), command)?;
        }
        Access::Shard(shard) => {
            let name = shard_lock_name(shard);
            let file = take(dir, &name, true, Some(shard))?;
            held.files.push((file, false));
            stamp(&mut held.files[0], dir.join(&name), command)?;
            // Shared with the other shards, exclusive against a whole-folder writer.
            let folder = take(dir, FOLDER_LOCK, false, Some(shard))?;
            held.files.push((folder, false));
        }
    }
    Ok(held)
}

/// Opens `dir/name` and locks it (`exclusive` or shared) without blocking.
fn take(dir: &Path, name: &str, exclusive: bool, shard: Option<Shard>) -> Result<File> {
    let path = dir.join(name);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io("opening the lock file", &path, e))?;
    let attempt = if exclusive { file.try_lock() } else { file.try_lock_shared() };
    match attempt {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(Error::FolderLocked {
            folder: dir.to_path_buf(),
            part: shard.filter(|_| name != FOLDER_LOCK).map_or_else(String::new, |s| format!(" (shard {s})")),
            holder: holders(dir, name),
        }),
        Err(TryLockError::Error(e)) => Err(Error::io("locking", &path, e)),
    }
}

/// Writes `PID COMMAND` into a freshly taken lock file.
fn stamp(held: &mut (File, bool), path: PathBuf, command: &str) -> Result<()> {
    let file = &mut held.0;
    let line = format!("{} {command}\n", std::process::id());
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(line.as_bytes()))
        .map_err(|e| Error::io("writing the lock file", &path, e))?;
    held.1 = true;
    Ok(())
}

/// Who holds `name` in `dir`, for the message: the live pids written in its lock file and, for
/// the folder lock, in the shard lock files (the shards share the folder lock and do not write
/// into it).
fn holders(dir: &Path, name: &str) -> String {
    let mut files = vec![dir.join(name)];
    if name == FOLDER_LOCK {
        if let Ok(entries) = fs::read_dir(dir) {
            let mut shards: Vec<PathBuf> = entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(".lock.shard-")))
                .map(|e| e.path())
                .collect();
            shards.sort();
            files.extend(shards);
        }
    }
    let found: Vec<String> =
        files
            .iter()
            .filter_map(|p| {
                let mut text = String::new();
                File::open(p).and_then(|mut f| f.read_to_string(&mut text)).ok()?;
                let (pid, command) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
                let pid: u32 = pid.parse().ok()?;
                alive(pid).then(|| {
                    if command.is_empty() {
                        format!("pid {pid}")
                    } else {
                        format!("pid {pid} (`{command}`)")
                    }
                })
            })
            .collect();
    if found.is_empty() {
        "another process (its pid is not recorded yet)".into()
    } else {
        found.join(", ")
    }
}

/// Whether a process `pid` exists (for the message only: a dead holder no longer holds the lock).
fn alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
        // SAFETY: signal 0 sends nothing; kill only checks that the process exists.
        let r = unsafe { libc::kill(pid, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// The command line's program and subcommand (`lynx-zoo eval`), for the lock file.
pub fn this_command() -> String {
    let mut args = std::env::args();
    let program = args
        .next()
        .map(|p| Path::new(&p).file_name().map_or_else(|| p.clone(), |f| f.to_string_lossy().into_owned()))
        .unwrap_or_default();
    match args.next() {
        Some(sub) => format!("{program} {sub}"),
        None => program,
    }
}

/// Removes everything in `dir` but the lock files (at any depth), so that a folder can be emptied
/// by the process that holds its lock without giving the lock up.
pub fn clear_except_locks(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))? {
        let entry = entry.map_err(|e| Error::io("listing", dir, e))?;
        let path = entry.path();
        let name = entry.file_name();
        let kind = entry.file_type().map_err(|e| Error::io("reading", &path, e))?;
        if kind.is_dir() {
            clear_except_locks(&path)?;
            // Stays when it still holds a lock file.
            let _ = fs::remove_dir(&path);
        } else if !name.to_str().is_some_and(is_lock_file) {
            fs::remove_file(&path).map_err(|e| Error::io("removing", &path, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S0: Shard = Shard { index: 0, count: 2 };
    const S1: Shard = Shard { index: 1, count: 2 };

    // flock locks belong to an open file description, so two `lock` calls in one process
    // conflict as two processes would.
    #[test]
    fn whole_excludes_everyone_and_shards_exclude_only_their_own_shard() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("v");
        let whole = lock(&dir, Access::Whole, "lynx-zoo eval").unwrap();
        let me = format!("pid {} (`lynx-zoo eval`)", std::process::id());
        for access in [Access::Whole, Access::Shard(S0)] {
            let e = lock(&dir, access, "x").unwrap_err().to_string();
            assert!(e.contains(&me) && e.contains(&dir.display().to_string()), "{e}");
        }
        drop(whole);
        let a = lock(&dir, Access::Shard(S0), "lynx-zoo eval").unwrap();
        let b = lock(&dir, Access::Shard(S1), "lynx-zoo eval").unwrap();
        let e = lock(&dir, Access::Shard(S0), "x").unwrap_err().to_string();
        assert!(e.contains("(shard 0/2)") && e.contains(&me), "{e}");
        // A whole-folder writer names the shard writers.
        let e = lock(&dir, Access::Whole, "x").unwrap_err().to_string();
        assert!(e.contains(&me), "{e}");
        drop((a, b));
        let _whole = lock(&dir, Access::Whole, "x").unwrap();
    }

    #[test]
    fn a_released_lock_clears_its_pid_and_clearing_keeps_lock_files() {
        let t = tempfile::tempdir().unwrap();
        let held = lock(t.path(), Access::Whole, "c").unwrap();
        let text = fs::read_to_string(t.path().join(FOLDER_LOCK)).unwrap();
        assert_eq!(text, format!("{} c\n", std::process::id()));
        fs::create_dir_all(t.path().join("sub")).unwrap();
        fs::write(t.path().join("sub/x.jsonl"), "x").unwrap();
        fs::write(t.path().join(crate::results::RUN_FILE), "{}").unwrap();
        clear_except_locks(t.path()).unwrap();
        let left: Vec<String> =
            fs::read_dir(t.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(left, [FOLDER_LOCK]);
        drop(held);
        assert_eq!(fs::read_to_string(t.path().join(FOLDER_LOCK)).unwrap(), "");
        assert!(!alive(u32::MAX));
    }
}
