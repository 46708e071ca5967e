//! Opening files in the data directory without ever following a symbolic link.
//!
//! Anyone who can steer an agent can write into the data directory, so nothing found there is
//! trusted: a [`Dir`] is a directory opened with `O_DIRECTORY | O_NOFOLLOW`, and every file or
//! directory below it is reached with `openat` relative to that handle, one validated name at a
//! time, again with `O_NOFOLLOW`. A link planted anywhere on the way is refused
//! ([`Error::Unsafe`]), never followed, and a directory swapped for a link after it was opened
//! changes nothing, since the handle still names the directory that was checked. Files must be
//! regular (checked with `fstat` on the open descriptor: no FIFO, device or socket); temporary
//! files are created with `O_CREAT | O_EXCL` under a fresh name and removed if anything fails;
//! deletions use `unlinkat` relative to the directory they are meant for, so a link is removed
//! itself, never what it points at.
//!
//! Only the root a caller names (the data directory, or the directory of a path passed to
//! [`JsonlWriter::open`](crate::JsonlWriter::open)) is opened by path, following links: it is
//! the operator's choice, and may legitimately be a link.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::error::io;
use crate::{Error, Result};

/// Why a link is refused.
pub(crate) const SYMLINK: &str = "is a symbolic link";
/// Why a FIFO, device, socket or directory is refused where a file belongs.
pub(crate) const NOT_FILE: &str = "is not a regular file";
/// Why a file is refused where a directory belongs.
const NOT_DIR: &str = "is not a directory";

/// Attempts at a fresh temporary name before giving up (each collision means someone planted
/// the name, or another writer is mid-write).
const TEMP_ATTEMPTS: u32 = 16;

/// How deep [`Dir::remove_tree`] goes: a checkpoint directory holds only files.
const MAX_TREE_DEPTH: u32 = 4;

fn errno_at(path: &Path, e: Errno) -> Error {
    Error::Io {
        path: path.to_owned(),
        source: e.into(),
    }
}

/// A file or directory type, from `lstat`.
fn kind_of(st: &rustix::fs::Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// Why `want` could not be opened at `path`, given what `lstat` says is there.
fn refusal(path: PathBuf, found: Option<FileType>, want: FileType, e: Errno) -> Error {
    match found {
        Some(FileType::Symlink) => Error::Unsafe {
            path,
            reason: SYMLINK,
        },
        Some(t) if t != want => Error::Unsafe {
            path,
            reason: if want == FileType::Directory {
                NOT_DIR
            } else {
                NOT_FILE
            },
        },
        _ => errno_at(&path, e),
    }
}

/// `file` if it is a regular file (checked on the descriptor, so nothing can swap it since).
fn regular(file: File, path: PathBuf) -> Result<File> {
    let meta = file.metadata().map_err(io(&path))?;
    if meta.is_file() {
        Ok(file)
    } else {
        Err(Error::Unsafe {
            path,
            reason: NOT_FILE,
        })
    }
}

/// Opens `path` for reading without following its last component, regular files only. The
/// directories on the way are the caller's (readers of arbitrary paths);
/// [`TaskFiles`](crate::TaskFiles) checks its own before it hands out a path.
///
/// `O_NONBLOCK` keeps the open of a FIFO from waiting for a writer (it is then refused); it has
/// no effect on regular files.
pub(crate) fn open_read(path: &Path) -> Result<File> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => regular(File::from(fd), path.to_owned()),
        Err(e) => {
            let found = std::fs::symlink_metadata(path).ok().map(|m| {
                let t = m.file_type();
                if t.is_symlink() {
                    FileType::Symlink
                } else if t.is_file() {
                    FileType::RegularFile
                } else if t.is_dir() {
                    FileType::Directory
                } else {
                    FileType::Unknown
                }
            });
            Err(refusal(path.to_owned(), found, FileType::RegularFile, e))
        }
    }
}

/// How [`Dir::open_file`] opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Read only; a missing file is `None`.
    Read,
    /// Read and append, created if missing.
    Append,
}

/// A directory opened without following links; everything below it is reached relative to it.
#[derive(Debug)]
pub(crate) struct Dir {
    fd: OwnedFd,
    /// For messages only: never used to reach anything.
    path: PathBuf,
}

impl Dir {
    /// Opens the directory a caller names, following links on the way (see the module docs);
    /// `None` if it does not exist. An empty path is the current directory.
    pub(crate) fn open(path: &Path) -> Result<Option<Dir>> {
        let at: &Path = if path.as_os_str().is_empty() {
            Path::new(".")
        } else {
            path
        };
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        match rustix::fs::openat(CWD, at, flags, Mode::empty()) {
            Ok(fd) => Ok(Some(Dir {
                fd,
                path: path.to_owned(),
            })),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(errno_at(path, e)),
        }
    }

    /// [`open`](Self::open), creating the directory (and its parents) first.
    pub(crate) fn create(path: &Path) -> Result<Dir> {
        if !path.as_os_str().is_empty() {
            std::fs::create_dir_all(path).map_err(io(path))?;
        }
        Dir::open(path)?.ok_or_else(|| Error::Io {
            path: path.to_owned(),
            source: std::io::ErrorKind::NotFound.into(),
        })
    }

    /// The directory of `path` (created if `create`) and its last component.
    pub(crate) fn of(path: &Path, create: bool) -> Result<(Dir, OsString)> {
        let name = path.file_name().ok_or_else(|| Error::InvalidInput {
            field: "path",
            reason: format!("{} does not name a file", path.display()),
        })?;
        let parent = path.parent().unwrap_or(Path::new(""));
        let dir = if create {
            Dir::create(parent)?
        } else {
            Dir::open(parent)?.ok_or_else(|| Error::Io {
                path: parent.to_owned(),
                source: std::io::ErrorKind::NotFound.into(),
            })?
        };
        Ok((dir, name.to_owned()))
    }

    /// `name` under this directory, for messages.
    pub(crate) fn join(&self, name: impl AsRef<OsStr>) -> PathBuf {
        self.path.join(name.as_ref())
    }

    /// `name` if it is one path segment (not empty, `.`, `..`, and without `/` or NUL): an
    /// internal guard, since every name is validated before it gets here.
    fn check<'a>(&self, name: &'a OsStr) -> Result<&'a OsStr> {
        let b = name.as_bytes();
        if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') || b.contains(&0) {
            return Err(Error::InvalidInput {
                field: "file name",
                reason: format!(
                    "{name:?} in {} is not one path segment",
                    self.path.display()
                ),
            });
        }
        Ok(name)
    }

    /// What `name` is, without following it; `None` if nothing is there.
    pub(crate) fn kind(&self, name: impl AsRef<OsStr>) -> Result<Option<FileType>> {
        let name = self.check(name.as_ref())?;
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(kind_of(&st))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(errno_at(&self.join(name), e)),
        }
    }

    fn refuse(&self, name: &OsStr, want: FileType, e: Errno) -> Error {
        let found = rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW)
            .ok()
            .map(|st| kind_of(&st));
        refusal(self.join(name), found, want, e)
    }

    /// The subdirectory `name`, never through a link; `None` if it does not exist.
    pub(crate) fn sub(&self, name: impl AsRef<OsStr>) -> Result<Option<Dir>> {
        let name = self.check(name.as_ref())?;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rustix::fs::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => Ok(Some(Dir {
                fd,
                path: self.join(name),
            })),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(self.refuse(name, FileType::Directory, e)),
        }
    }

    /// Creates the subdirectory `name`; `false` if something already has that name.
    pub(crate) fn mkdir(&self, name: impl AsRef<OsStr>) -> Result<bool> {
        let name = self.check(name.as_ref())?;
        match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(0o777)) {
            Ok(()) => Ok(true),
            Err(Errno::EXIST) => Ok(false),
            Err(e) => Err(errno_at(&self.join(name), e)),
        }
    }

    /// The subdirectory `name`, created if missing, never through a link.
    pub(crate) fn sub_create(&self, name: impl AsRef<OsStr>) -> Result<Dir> {
        let name = name.as_ref();
        self.mkdir(name)?;
        self.sub(name)?.ok_or_else(|| Error::Io {
            path: self.join(name),
            source: std::io::ErrorKind::NotFound.into(),
        })
    }

    /// Opens the file `name`, never through a link, regular files only; `None` if it does not
    /// exist (reading).
    pub(crate) fn open_file(
        &self,
        name: impl AsRef<OsStr>,
        access: Access,
    ) -> Result<Option<File>> {
        let name = self.check(name.as_ref())?;
        // `O_NONBLOCK`: opening a FIFO must not wait for its other end (it is refused after).
        let flags = OFlags::NOFOLLOW
            | OFlags::CLOEXEC
            | OFlags::NONBLOCK
            | match access {
                Access::Read => OFlags::RDONLY,
                Access::Append => OFlags::RDWR | OFlags::APPEND | OFlags::CREATE,
            };
        match rustix::fs::openat(&self.fd, name, flags, Mode::from_raw_mode(0o666)) {
            Ok(fd) => regular(File::from(fd), self.join(name)).map(Some),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(self.refuse(name, FileType::RegularFile, e)),
        }
    }

    /// The whole of file `name` (`None` if missing), refused past `max` bytes.
    pub(crate) fn read_bounded(
        &self,
        name: impl AsRef<OsStr>,
        max: u64,
    ) -> Result<Option<Vec<u8>>> {
        let name = name.as_ref();
        let Some(file) = self.open_file(name, Access::Read)? else {
            return Ok(None);
        };
        let path = self.join(name);
        let mut bytes = Vec::new();
        file.take(max.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(io(&path))?;
        if bytes.len() as u64 > max {
            return Err(Error::Corrupt {
                path,
                reason: format!("it is larger than the {max} bytes it may hold"),
            });
        }
        Ok(Some(bytes))
    }

    /// Creates a new, empty temporary file for `name` (`.<name>.<fresh>.tmp`), exclusively:
    /// never an existing file, never through a link. Returns it and its name.
    pub(crate) fn create_temp(&self, name: impl AsRef<OsStr>) -> Result<(File, OsString)> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let name = self.check(name.as_ref())?;
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        for _ in 0..TEMP_ATTEMPTS {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let mut tmp = OsString::from(".");
            tmp.push(name);
            tmp.push(format!(
                ".{}-{}-{nanos:x}.tmp",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            ));
            match rustix::fs::openat(&self.fd, tmp.as_os_str(), flags, Mode::from_raw_mode(0o666)) {
                Ok(fd) => return Ok((File::from(fd), tmp)),
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(errno_at(&self.join(&tmp), e)),
            }
        }
        Err(Error::Io {
            path: self.join(name),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "no fresh temporary name was free",
            ),
        })
    }

    /// Replaces `name` atomically with what `fill` writes: an exclusive temporary file, `fsync`,
    /// rename over `name` (a link there is replaced, not followed), directory `fsync`. The
    /// temporary file is removed if anything fails.
    pub(crate) fn replace_with(
        &self,
        name: impl AsRef<OsStr>,
        fill: impl FnOnce(&mut File) -> std::io::Result<()>,
    ) -> Result<()> {
        let name = self.check(name.as_ref())?;
        let (mut file, tmp) = self.create_temp(name)?;
        let written = fill(&mut file)
            .and_then(|()| file.sync_all())
            .map_err(io(&self.join(&tmp)));
        drop(file);
        if let Err(e) = written.and_then(|()| self.rename(&tmp, name)) {
            let _ = self.remove_file(&tmp);
            return Err(e);
        }
        self.sync()
    }

    /// [`replace_with`](Self::replace_with) `bytes`.
    pub(crate) fn write_atomic(&self, name: impl AsRef<OsStr>, bytes: &[u8]) -> Result<()> {
        self.replace_with(name, |f| std::io::Write::write_all(f, bytes))
    }

    /// Renames `from` to `to`, both in this directory (links are renamed as links).
    pub(crate) fn rename(&self, from: impl AsRef<OsStr>, to: impl AsRef<OsStr>) -> Result<()> {
        let (from, to) = (self.check(from.as_ref())?, self.check(to.as_ref())?);
        rustix::fs::renameat(&self.fd, from, &self.fd, to)
            .map_err(|e| errno_at(&self.join(from), e))
    }

    /// Removes the file or link `name` (a link itself, never its target); `false` if missing.
    pub(crate) fn remove_file(&self, name: impl AsRef<OsStr>) -> Result<bool> {
        let name = self.check(name.as_ref())?;
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(errno_at(&self.join(name), e)),
        }
    }

    /// Removes `name` and, if it is a directory, everything in it, never leaving this directory:
    /// links are removed themselves, subdirectories are opened without following and emptied
    /// relative to their own handle. Nesting deeper than a checkpoint has is refused.
    pub(crate) fn remove_tree(&self, name: impl AsRef<OsStr>) -> Result<()> {
        self.remove_tree_at(name.as_ref(), 0)
    }

    fn remove_tree_at(&self, name: &OsStr, depth: u32) -> Result<()> {
        let name = self.check(name)?;
        if self.kind(name)? != Some(FileType::Directory) {
            self.remove_file(name)?;
            return Ok(());
        }
        if depth >= MAX_TREE_DEPTH {
            return Err(Error::Unsafe {
                path: self.join(name),
                reason: "is nested deeper than anything the data directory holds",
            });
        }
        // Swapped for a link since `kind`: `sub` refuses it rather than follow.
        if let Some(sub) = self.sub(name)? {
            for (entry, _) in sub.entries()? {
                sub.remove_tree_at(&entry, depth + 1)?;
            }
        }
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(errno_at(&self.join(name), e)),
        }
    }

    /// The names in this directory (without `.` and `..`) and their types as the directory
    /// reports them (`Unknown` on file systems that do not say; use [`kind`](Self::kind)).
    pub(crate) fn entries(&self) -> Result<Vec<(OsString, FileType)>> {
        let list = rustix::fs::Dir::read_from(&self.fd).map_err(|e| errno_at(&self.path, e))?;
        let mut out = Vec::new();
        for entry in list {
            let entry = entry.map_err(|e| errno_at(&self.path, e))?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name != "." && name != ".." {
                out.push((name.to_owned(), entry.file_type()));
            }
        }
        Ok(out)
    }

    /// `fsync`s the directory, so renames and new entries in it survive power loss.
    pub(crate) fn sync(&self) -> Result<()> {
        rustix::fs::fsync(&self.fd).map_err(|e| errno_at(&self.path, e))
    }

    /// Takes an `flock` on the directory itself (`exclusive`: `LOCK_EX`), on a descriptor of
    /// its own, released when the returned [`Locked`] drops.
    pub(crate) fn lock(&self, exclusive: bool) -> Result<Locked> {
        let fd = self.fd.try_clone().map_err(io(&self.path))?;
        Locked::take(File::from(fd), exclusive, &self.path)
    }

    /// Opens `name` for reading and takes an `flock` on it (`exclusive`: `LOCK_EX`, else
    /// `LOCK_SH`), making sure the file locked is still the one named `name` (a replacer
    /// renames over it under `LOCK_EX`: a lock on the old file is retaken on the new one).
    /// `None` if there is no such file. The lock goes with the returned [`Locked`].
    pub(crate) fn lock_file(
        &self,
        name: impl AsRef<OsStr>,
        exclusive: bool,
    ) -> Result<Option<Locked>> {
        let name = name.as_ref();
        let path = self.join(name);
        for _ in 0..MAX_RELOCKS {
            let Some(file) = self.open_file(name, Access::Read)? else {
                return Ok(None);
            };
            let locked = Locked::take(file, exclusive, &path)?;
            let st = rustix::fs::fstat(&locked.file).map_err(|e| errno_at(&path, e))?;
            let named = match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(now) => Some((now.st_dev, now.st_ino)),
                Err(Errno::NOENT) => None,
                Err(e) => return Err(errno_at(&path, e)),
            };
            if st.st_nlink > 0 && named == Some((st.st_dev, st.st_ino)) {
                return Ok(Some(locked));
            }
        }
        Err(Error::Io {
            path,
            source: std::io::Error::other("the file kept being replaced while it was locked"),
        })
    }
}

/// How many times [`Dir::lock_file`] retakes a lock on a file replaced under it.
const MAX_RELOCKS: u32 = 1000;

/// A file with an `flock` on it, released when dropped.
#[derive(Debug)]
pub(crate) struct Locked {
    pub(crate) file: File,
}

impl Locked {
    /// Takes the lock on `file` (waiting for it).
    pub(crate) fn take(file: File, exclusive: bool, path: &Path) -> Result<Locked> {
        flock(&file, exclusive, path)?;
        Ok(Locked { file })
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        // Closing the descriptor releases the lock too; unlocking first only makes it prompt.
        let _ = rustix::fs::flock(&self.file, rustix::fs::FlockOperation::Unlock);
    }
}

/// Takes `LOCK_EX` or `LOCK_SH` on `file`, retrying when interrupted.
pub(crate) fn flock(file: &impl std::os::fd::AsFd, exclusive: bool, path: &Path) -> Result<()> {
    let op = if exclusive {
        rustix::fs::FlockOperation::LockExclusive
    } else {
        rustix::fs::FlockOperation::LockShared
    };
    loop {
        match rustix::fs::flock(file, op) {
            Ok(()) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(errno_at(path, e)),
        }
    }
}

/// The length of `file` taken under its `LOCK_SH`, held only for the `fstat`: no write-out of
/// a store's writers (each under `LOCK_EX`) is under way then, so bytes below it are whole
/// write-outs, and a reader that reads no further sees a batch whole or not at all.
pub(crate) fn settled_len(file: &File, path: &Path) -> Result<u64> {
    flock(file, false, path)?;
    let len = file.metadata().map(|m| m.len()).map_err(io(path));
    unlock(file);
    len
}

/// Releases an `flock` taken by [`flock`].
pub(crate) fn unlock(file: &impl std::os::fd::AsFd) {
    let _ = rustix::fs::flock(file, rustix::fs::FlockOperation::Unlock);
}
