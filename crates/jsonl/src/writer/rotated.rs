//! Rotated files: their names (`name.1` newest … `name.N`, or `.gz`), lookup and gzip.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::io;
use crate::fsx::{Access, Dir};
use crate::{Error, Result};

/// The path of rotated file `n` of `path` (`logs.jsonl.1` is the newest), uncompressed.
pub fn rotated_path(path: &Path, n: usize) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(format!(".{n}"));
    PathBuf::from(p)
}

/// Rotated file `n` of `path` as it exists on disk: `path.n` or `path.n.gz`. Whatever is there
/// counts, a link included (it is not followed to decide: readers refuse it).
pub fn existing_rotated(path: &Path, n: usize) -> Option<PathBuf> {
    let plain = rotated_path(path, n);
    if plain.symlink_metadata().is_ok() {
        return Some(plain);
    }
    let gz = gz_path(&plain);
    gz.symlink_metadata().is_ok().then_some(gz)
}

fn gz_path(p: &Path) -> PathBuf {
    PathBuf::from(gz_name(p.as_os_str()))
}

pub(super) fn gz_name(name: &OsStr) -> OsString {
    let mut s = name.to_owned();
    s.push(".gz");
    s
}

/// `name.n`.
pub(super) fn rotated_name(name: &OsStr, n: usize) -> OsString {
    let mut s = name.to_owned();
    s.push(format!(".{n}"));
    s
}

/// Rotated file `n` of `name` in `dir` as it exists (`name.n` or `name.n.gz`), not followed.
pub(crate) fn existing_rotated_in(dir: &Dir, name: &OsStr, n: usize) -> Result<Option<OsString>> {
    let plain = rotated_name(name, n);
    if dir.kind(&plain)?.is_some() {
        return Ok(Some(plain));
    }
    let gz = gz_name(&plain);
    Ok(dir.kind(&gz)?.map(|_| gz))
}

/// Gzips `src` into `src.gz` (written atomically), then removes `src`; all in `dir`, never
/// through a link.
pub(super) fn compress(dir: &Dir, src: &OsStr) -> Result<()> {
    let path = dir.join(src);
    let mut data = Vec::new();
    dir.open_file(src, Access::Read)?
        .ok_or_else(|| Error::Io {
            path: path.clone(),
            source: std::io::ErrorKind::NotFound.into(),
        })?
        .read_to_end(&mut data)
        .map_err(io(&path))?;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4),
        flate2::Compression::default(),
    );
    enc.write_all(&data).map_err(io(&path))?;
    let bytes = enc.finish().map_err(io(&path))?;
    dir.write_atomic(gz_name(src), &bytes)?;
    dir.remove_file(src).map(drop)
}
