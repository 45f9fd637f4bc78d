//! Applying bundles to a replica's disk images, in chain order: the reverse replication of a
//! failback (the recovered VM's points applied to the original disks), checked against the
//! [`ApplyState`] kept beside the images.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use super::apply_state::ApplyState;
use super::reader::Bundle;
use crate::blob;
use crate::crypto::Key;
use crate::error::{Error, Result};
use crate::extent::Source;
use crate::id::{BlobId, PointId};
use crate::resync::Progress;
use crate::resync::disk_sig::sign_disks_into;
use crate::resync::point_sig::{PointSigHeader, PointSigWriter};

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The point the disks now hold.
    pub point: PointId,
    /// Its sequence number.
    pub seq: u64,
    /// Bytes written from the bundle's blobs.
    pub data_bytes: u64,
    /// Bytes zeroed.
    pub zeroed_bytes: u64,
}

/// One disk being written.
struct Target {
    name: String,
    path: PathBuf,
    file: File,
    size: u64,
    block_device: bool,
}

/// Applies the bundle at `bundle_path` to the group's disks (`(name, image path)`, every disk of
/// the bundle), which hold the point `state_path`'s [`ApplyState`] names, and advances the state.
///
/// Refused before a byte is written: another group or key, a bundle whose parent is not the
/// disks' point (a gap, a fork, or a replay of an older point: ChainBroken, saying which point
/// comes next), the point the disks hold already (AlreadyDone), a bundle that does not verify
/// with the key in every byte (Corrupt, Authentication), a disk missing or extra. The state
/// records the point being applied before the first write and the new head after the images
/// are synced: an apply cut at any moment is completed by applying the same bundle again (and
/// nothing else is accepted until it is). Progress counts the bytes the manifests map.
pub fn apply(
    bundle_path: impl AsRef<Path>,
    key: &Key,
    disks: &[(&str, &Path)],
    state_path: impl AsRef<Path>,
    progress: Progress<'_>,
) -> Result<Applied> {
    let state_path = state_path.as_ref();
    let mut state = ApplyState::load(state_path)?;
    let bundle = Bundle::open(bundle_path.as_ref())?;
    let h = bundle.header();
    let point = bundle.point_id();
    check_place(&state, &bundle)?;
    if key.id() != state.key_id {
        return Err(Error::invalid_argument(
            "key",
            format!(
                "group `{}` is applied under key {}, not {}",
                state.group,
                state.key_id,
                key.id()
            ),
        ));
    }
    let mut targets = open_targets(&bundle, disks)?;
    let total: u64 = bundle
        .disks()
        .iter()
        .map(|d| d.extents.mapped_bytes())
        .sum();
    let cancelled = || Error::Cancelled {
        what: "apply".into(),
    };
    if !progress(0, total) {
        return Err(cancelled());
    }
    // Every byte checked with the key before the disks are touched.
    bundle.verify_with_key(key)?;
    if state.applying.is_none() {
        state.applying = Some(point);
        state.save(state_path, true)?;
    }
    // Sizes first where a disk grows, so that every write lands inside it.
    for (t, d) in targets.iter_mut().zip(bundle.disks()) {
        let size = d.extents.disk_size();
        if size > t.size {
            t.file
                .set_len(size)
                .map_err(|e| Error::io("resizing", Some(&t.path), e))?;
            t.size = size;
        }
    }
    let mut wanted: HashMap<BlobId, Vec<(usize, u64, u64, u64)>> = HashMap::new();
    let mut stats = Applied {
        point,
        seq: h.seq,
        data_bytes: 0,
        zeroed_bytes: 0,
    };
    let mut done = 0u64;
    for (i, d) in bundle.disks().iter().enumerate() {
        for e in d.extents.iter() {
            match e.source {
                Source::Blob { id, offset } => wanted
                    .entry(id)
                    .or_default()
                    .push((i, e.start, offset, e.len)),
                Source::Zero => {
                    let t = &targets[i];
                    zero_range(t, e.start, e.len)
                        .map_err(|e| Error::io("zeroing", Some(&t.path), e))?;
                    stats.zeroed_bytes += e.len;
                    done += e.len;
                }
            }
        }
    }
    bundle.for_each_blob(|id, stored| {
        let plain = blob::decode(key, id, stored)?;
        for &(i, at, offset, len) in wanted.get(id).map(Vec::as_slice).unwrap_or(&[]) {
            let t = &targets[i];
            // Checked when the bundle verified; checked again rather than trusted.
            let range = usize::try_from(offset)
                .ok()
                .zip(usize::try_from(offset.saturating_add(len)).ok());
            let Some(bytes) = range.and_then(|(a, b)| plain.get(a..b)) else {
                return Err(Error::corrupt(
                    format!("blob {id}"),
                    None,
                    format!(
                        "a manifest reads {len} bytes at offset {offset} of its {} bytes",
                        plain.len()
                    ),
                ));
            };
            write_all_at(t, bytes, at).map_err(|e| Error::io("writing", Some(&t.path), e))?;
            stats.data_bytes += len;
            done += len;
        }
        if !progress(done, total) {
            return Err(cancelled());
        }
        Ok(())
    })?;
    for (t, d) in targets.iter_mut().zip(bundle.disks()) {
        let size = d.extents.disk_size();
        if size < t.size {
            t.file
                .set_len(size)
                .map_err(|e| Error::io("resizing", Some(&t.path), e))?;
        }
        crate::fsutil::fault::check(&t.path)
            .and_then(|()| t.file.sync_all())
            .map_err(|e| Error::io("syncing", Some(&t.path), e))?;
    }
    state.head = point;
    state.next_seq = h.seq + 1;
    state.applying = None;
    state.save(state_path, true)?;
    progress(total, total);
    Ok(stats)
}

/// The bundle must be the next point of the disks' chain (or the one whose apply was cut).
fn check_place(state: &ApplyState, bundle: &Bundle) -> Result<()> {
    let h = bundle.header();
    let point = bundle.point_id();
    if h.group != state.group {
        return Err(Error::invalid_argument(
            "bundle",
            format!(
                "{} is a point of group `{}`; these disks hold group `{}`",
                bundle.path().display(),
                h.group,
                state.group
            ),
        ));
    }
    let broken = |detail: String| Error::ChainBroken {
        group: state.group.clone(),
        detail,
    };
    let next = state.next_seq;
    if let Some(cut) = state.applying {
        if cut == point {
            return Ok(());
        }
        return Err(broken(format!(
            "the apply of point {} (seq {next}) was interrupted and the disks are part way to \
             it: apply that bundle again before any other ({} is seq {})",
            &cut.to_hex()[..16],
            bundle.path().display(),
            h.seq
        )));
    }
    if point == state.head {
        return Err(Error::AlreadyDone {
            what: format!(
                "applying {} (point seq {}): the disks hold it",
                bundle.path().display(),
                h.seq
            ),
        });
    }
    if h.parent == state.head && h.seq == next {
        return Ok(());
    }
    let why = if h.seq < next {
        "a replay of an older point, or a point of another chain"
    } else if h.seq > next {
        "a gap: the points before it are not applied"
    } else {
        "a fork: its parent is not the point the disks hold"
    };
    Err(broken(format!(
        "{} (point seq {}) does not follow the point the disks hold (seq {}): {why}; apply the \
         bundle of seq {next} next",
        bundle.path().display(),
        h.seq,
        next.saturating_sub(1)
    )))
}

fn open_targets(bundle: &Bundle, disks: &[(&str, &Path)]) -> Result<Vec<Target>> {
    let names: Vec<&str> = bundle.disks().iter().map(|d| d.name.as_str()).collect();
    if let Some((extra, _)) = disks.iter().find(|(n, _)| !names.contains(n)) {
        return Err(Error::invalid_argument(
            "disks",
            format!(
                "disk `{extra}` is not in the bundle (its disks: {})",
                names.join(", ")
            ),
        ));
    }
    bundle
        .disks()
        .iter()
        .map(|d| {
            let mut given = disks.iter().filter(|(n, _)| *n == d.name);
            let (Some((_, path)), None) = (given.next(), given.next()) else {
                return Err(Error::invalid_argument(
                    "disks",
                    format!(
                        "disk `{}` must be given once (the bundle's disks: {})",
                        d.name,
                        names.join(", ")
                    ),
                ));
            };
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Error::NotFound {
                        what: format!("image {} of disk `{}`", path.display(), d.name),
                    },
                    _ => Error::io("opening", Some(path), e),
                })?;
            let size = file
                .metadata()
                .map_err(|e| Error::io("reading the size of", Some(path), e))?
                .len();
            let block_device = crate::resync::is_block_device(&file);
            let size = if block_device {
                use std::io::{Seek, SeekFrom};
                (&file)
                    .seek(SeekFrom::End(0))
                    .map_err(|e| Error::io("reading the size of", Some(path), e))?
            } else {
                size
            };
            if block_device && size != d.extents.disk_size() {
                return Err(Error::invalid_argument(
                    "disks",
                    format!(
                        "disk `{}` is {} bytes at this point; block device {} holds {size}",
                        d.name,
                        d.extents.disk_size(),
                        path.display()
                    ),
                ));
            }
            Ok(Target {
                name: d.name.clone(),
                path: path.to_path_buf(),
                file,
                size,
                block_device,
            })
        })
        .collect()
}

/// Takes the disks' signature ([`sign_disks_into`]), streams it to `sig_path` (sealed under
/// `key`; memory bounded whatever the disks' size) and saves the [`ApplyState`] at
/// `state_path` that expects the resync point made against it: from then on the disks must
/// not change but by [`apply`]. Either file already there is AlreadyExists unless `replace`.
/// Returns the signature's header.
#[allow(clippy::too_many_arguments)]
pub fn sign_for_apply(
    group: &str,
    disks: &[(&str, &Path)],
    key: &Key,
    chunk_size: u32,
    sig_path: &Path,
    state_path: &Path,
    replace: bool,
    progress: Progress<'_>,
) -> Result<PointSigHeader> {
    if !replace && state_path.exists() {
        return Err(Error::AlreadyExists {
            what: state_path.display().to_string(),
        });
    }
    let mut out = crate::fsutil::OutputFile::create(sig_path, replace)?;
    let mut writer: Option<PointSigWriter<std::io::BufWriter<&mut crate::fsutil::OutputFile>>> =
        None;
    let mut pending = Some(std::io::BufWriter::new(&mut out));
    let header = sign_disks_into(group, disks, key, chunk_size, progress, &mut |h, _, ids| {
        if let Some(w) = pending.take() {
            writer = Some(PointSigWriter::start(w, h, key)?);
        }
        match writer.as_mut() {
            Some(w) => w.ids(ids),
            None => Ok(()),
        }
    })?;
    let w = match (writer, pending) {
        (Some(w), _) => w,
        // No chunk at all (every disk empty): the header alone.
        (None, Some(out)) => PointSigWriter::start(out, &header, key)?,
        (None, None) => {
            return Err(Error::invalid_argument(
                "disks",
                "the signature's writer was lost (a bug: report it)",
            ));
        }
    };
    w.finish()?;
    let state = ApplyState {
        group: group.to_string(),
        key_id: key.id(),
        head: header.point,
        next_seq: header.seq + 1,
        applying: None,
    };
    // The state first: a signature without its state is useless, a state without its
    // published signature is replaced by the next attempt.
    state.save(state_path, true)?;
    out.commit()?;
    Ok(header)
}

fn write_all_at(t: &Target, buf: &[u8], pos: u64) -> std::io::Result<()> {
    crate::fsutil::fault::check(&t.path)?;
    std::os::unix::fs::FileExt::write_all_at(&t.file, buf, pos)
}

/// Zeros a range: a hole where the file system punches one, else written zeros.
fn zero_range(t: &Target, pos: u64, len: u64) -> std::io::Result<()> {
    crate::fsutil::fault::check(&t.path)?;
    if !t.block_device && crate::resync::punch_hole(&t.file, pos, len) {
        return Ok(());
    }
    let zeros = vec![0u8; len.min(1 << 20) as usize];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(zeros.len() as u64);
        write_all_at(t, &zeros[..n as usize], pos + done)?;
        done += n;
    }
    Ok(())
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("name", &self.name)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}
