//! A group's chain as stored: from its head back to its base through the parent ids.

use std::collections::HashMap;

use super::head::Head;
use super::layout::Layout;
use super::point::{PointFile, StoredPoint};
use crate::bundle::format::BundleKind;
use crate::error::{Error, Result};
use crate::id::PointId;

/// The points of `group`, oldest first, with the head it was read from. `whole` reads and checks
/// every file entirely (trailer, manifests); otherwise only what listing needs.
///
/// Each point file links to the one before it by its first record's parent id, and the records
/// inside a file form a hash chain (checked when it is read), so the shipped headers from the
/// first point ever shipped (or from a checkpoint the key holder signed) to the head are one
/// hash chain, before and after pruning. The head counts the shipped points, which pruning
/// never changes. Every file must be signed by one verifying key, the group's pinned one when
/// it has a pin.
///
/// A chain that does not link up (a missing or foreign point, a loop, a count that differs
/// from the head's) is [`Corrupt`](crate::ErrorKind::Corrupt): committed points are never
/// missing from an undamaged vault. A point signed by another key than the rest of the chain
/// (or than the pin) is [`Authentication`](crate::ErrorKind::Authentication).
pub(crate) fn load(layout: &Layout, group: &str, whole: bool) -> Result<(Head, Vec<StoredPoint>)> {
    let head = Head::load(layout, group)?.ok_or_else(|| Error::NotFound {
        what: format!("group `{group}` in vault {}", layout.root().display()),
    })?;
    let dir = layout.points(group);
    // Point files by the id prefix in their names.
    let mut by_prefix: HashMap<String, Vec<std::path::PathBuf>> = HashMap::new();
    for path in crate::fsutil::list_dir(&dir)? {
        let prefix = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.split_once('-'))
            .and_then(|(_, rest)| rest.strip_suffix(".rcpt"));
        if let Some(prefix) = prefix {
            by_prefix.entry(prefix.to_string()).or_default().push(path);
        }
    }
    let broken = |detail: String| {
        Error::corrupt(format!("chain of group `{group}`"), None, detail).with_path(&dir)
    };
    let mut chain: Vec<StoredPoint> = Vec::new();
    let mut want = head.point;
    let mut last_seq = None;
    let mut headers = 0u64;
    loop {
        if headers >= head.count {
            return Err(broken(format!(
                "the head counts {} shipped points but the chain goes on past them",
                head.count
            )));
        }
        let prefix = &want.to_hex()[..16];
        let mut found = None;
        for path in by_prefix.get(prefix).into_iter().flatten() {
            let file = if whole {
                PointFile::read(path)?
            } else {
                PointFile::read_listing(path)?
            };
            if file.id() == want {
                found = Some(StoredPoint {
                    path: path.clone(),
                    file,
                });
                break;
            }
        }
        let Some(p) = found else {
            return Err(broken(format!("point {} is missing", want.to_hex())));
        };
        let h = &p.file.header;
        if h.group != group {
            return Err(broken(format!(
                "point {} belongs to group `{}`",
                want.to_hex(),
                h.group
            )));
        }
        if last_seq.is_some_and(|s| h.seq >= s) {
            return Err(broken(format!(
                "point {} has sequence {}, not below its successor's",
                want.to_hex(),
                h.seq
            )));
        }
        if let Some(next) = chain.last()
            && (next.file.header.key_id() != h.key_id()
                || next.file.header.verifying_key != h.verifying_key)
        {
            return Err(Error::Authentication {
                what: format!("chain of group `{group}`"),
                detail: format!(
                    "point {} is sealed or signed under another key than its successor",
                    want.to_hex()
                ),
            }
            .with_path(&p.path));
        }
        if chain.is_empty() {
            super::trust::check(layout, group, &h.verifying_key)?;
        }
        // The oldest merged header's sequence: the next point must be below it.
        let (parent, kind, first_seq) = p.file.first;
        last_seq = Some(first_seq);
        headers = headers.saturating_add(p.file.shipped);
        chain.push(p);
        if kind == BundleKind::Base {
            break;
        }
        want = parent;
    }
    if headers != head.count {
        return Err(broken(format!(
            "the head counts {} shipped points; the chain holds {headers} shipped points",
            head.count,
        )));
    }
    if chain[0].file.header.seq != head.seq {
        return Err(broken(
            "the head's sequence number is not its point's".into(),
        ));
    }
    chain.reverse();
    Ok((head, chain))
}

/// The point file `head` names (for listing: see [`PointFile::read_listing`]), checked to be it.
pub(crate) fn tip(layout: &Layout, head: &Head) -> Result<PointFile> {
    let path = layout
        .points(&head.group)
        .join(PointFile::file_name(head.seq, &head.point));
    let file = PointFile::read_listing(&path)?;
    if file.id() != head.point || file.header.group != head.group {
        return Err(Error::corrupt(
            format!("chain of group `{}`", head.group),
            None,
            "the head's point file holds another point",
        )
        .with_path(&path));
    }
    Ok(file)
}

/// Whether point `id` of sequence `seq` was shipped into the chain, kept or since merged by
/// pruning (used when a bundle is ingested again): the file whose records span `seq` is read.
pub(crate) fn contains(chain: &[StoredPoint], id: &PointId, seq: u64) -> Result<bool> {
    let Some(p) = chain.iter().find(|p| p.file.header.seq >= seq) else {
        return Ok(false);
    };
    if p.file.first.2 > seq {
        return Ok(false);
    }
    Ok(super::repair::record_ids(&p.path)?
        .iter()
        .any(|(s, i)| *s == seq && i == id))
}
