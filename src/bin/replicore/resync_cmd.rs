//! `replicore resync ...`: signatures, deltas, apply, and a local resync.

use std::io::BufWriter;

use replicore::OutputFile;
use replicore::crypto::Key;
use replicore::resync::{DEFAULT_CHUNK_SIZE, Delta, Signature, resync};

use crate::args::{ResyncCmd, Sealing, size};
use crate::out::{Bar, bytes, forceable};
use crate::{CmdResult, Failure, keys};

/// A new output file (0600, published whole by [`finish`]; an existing one is refused unless
/// `force`).
fn create(path: &std::path::Path, force: bool) -> Result<BufWriter<OutputFile>, crate::Failure> {
    OutputFile::create(path, force)
        .map(|f| BufWriter::with_capacity(1 << 20, f))
        .map_err(forceable)
}

/// Flushes, syncs and publishes an output of [`create`].
fn finish(w: BufWriter<OutputFile>, path: &std::path::Path) -> Result<(), crate::Failure> {
    let f = w
        .into_inner()
        .map_err(|e| replicore::Error::io("writing", Some(path), e.into_error()))?;
    f.commit().map_err(forceable)
}

/// The chunk size given, or the default (64K).
fn chunk(arg: Option<&str>) -> Result<u32, crate::Failure> {
    Ok(arg
        .map(|s| size(s, "--chunk-size"))
        .transpose()?
        .unwrap_or(DEFAULT_CHUNK_SIZE))
}

/// The group key (sealed files), or None for plain files when `--plain` was given; neither is
/// a usage error, so that a plain file is never written or trusted by accident.
fn key(s: &Sealing) -> Result<Option<Key>, Failure> {
    match (&s.key, s.plain) {
        (Some(k), _) => Ok(Some(keys::load(k, &s.pass)?)),
        (None, true) => Ok(None),
        (None, false) => Err(Failure::Usage(
            "give --key KEYFILE to seal the resync files with the group's key, or --plain for \
             keyless files (readable and forgeable by anyone who holds them)"
                .into(),
        )),
    }
}

/// "sealed" or "plain".
fn mode(key: &Option<Key>) -> &'static str {
    if key.is_some() { "sealed" } else { "plain" }
}

pub fn run(c: ResyncCmd) -> CmdResult {
    match c {
        ResyncCmd::Signature {
            image,
            out,
            force,
            chunk_size,
            sealing,
        } => {
            let cs = chunk(chunk_size.as_deref())?;
            let key = key(&sealing)?;
            // Streamed to the file as the image is hashed: memory bounded whatever its size.
            let mut w = create(&out, force)?;
            let bar = Bar::new("signature");
            let (disk_size, _) =
                Signature::write_of_image(&image, cs, key.as_ref(), &mut w, &mut bar.callback())?;
            drop(bar);
            finish(w, &out)?;
            println!(
                "{}: {} signature, {} chunks of {} over {}",
                out.display(),
                mode(&key),
                disk_size.div_ceil(u64::from(cs)),
                bytes(u64::from(cs)),
                bytes(disk_size)
            );
        }
        ResyncCmd::Delta {
            source,
            signature,
            out,
            force,
            sealing,
        } => {
            let key = key(&sealing)?;
            // The signature is read as the source is hashed: memory bounded whatever its size.
            let mut w = create(&out, force)?;
            let bar = Bar::new("delta");
            let st = Delta::compute_from_file(
                &source,
                &signature,
                key.as_ref(),
                &mut w,
                &mut bar.callback(),
            )?;
            drop(bar);
            finish(w, &out)?;
            println!(
                "{}: {} delta, {} of {} chunks differ, {} of data, delta {}",
                out.display(),
                mode(&key),
                st.data_chunks + st.zero_chunks,
                st.chunks,
                bytes(st.data_bytes),
                bytes(st.delta_bytes)
            );
        }
        ResyncCmd::Apply {
            target,
            delta,
            sealing,
        } => {
            let key = key(&sealing)?;
            let bar = Bar::new("apply");
            let st = match &key {
                Some(k) => Delta::apply_sealed(&delta, &target, k, &mut bar.callback())?,
                None => Delta::apply(&delta, &target, &mut bar.callback())?,
            };
            drop(bar);
            println!(
                "{}: {} chunks written ({}), {} zeroed; {}",
                target.display(),
                st.data_chunks,
                bytes(st.data_bytes),
                st.zero_chunks,
                bytes(st.final_size)
            );
        }
        ResyncCmd::Run {
            source,
            target,
            chunk_size,
        } => {
            let cs = chunk(chunk_size.as_deref())?;
            let bar = Bar::new("resync");
            let st = resync(&source, &target, cs, &mut bar.callback())?;
            drop(bar);
            println!(
                "{}: {} of {} chunks copied ({}), {} zeroed",
                target.display(),
                st.data_chunks,
                st.chunks,
                bytes(st.data_bytes),
                st.zero_chunks
            );
        }
        ResyncCmd::Sign(a) => crate::reverse_cmd::sign(a)?,
        ResyncCmd::Ship {
            key,
            pass,
            signature,
            group,
            disks,
            log,
            out_dir,
            force,
        } => ship_into_chain(
            &key, &pass, &signature, &group, &disks, &log, &out_dir, force,
        )?,
    }
    Ok(())
}

/// `replicore resync ship`: see the command's help.
#[allow(clippy::too_many_arguments)]
fn ship_into_chain(
    key: &std::path::Path,
    pass: &crate::args::Passphrase,
    signature: &std::path::Path,
    group: &str,
    disks: &[String],
    log: &std::path::Path,
    out_dir: &std::path::Path,
    force: bool,
) -> CmdResult {
    use replicore::bundle::{ResyncOptions, resync_ship_from};
    use replicore::resync::point_sig::{PointSigReader, open_file};
    let list = crate::reverse_cmd::disk_pairs(disks)?;
    let key = keys::load(key, pass)?;
    let sig =
        PointSigReader::open(open_file(signature)?, &key).map_err(|e| e.with_path(signature))?;
    if sig.header().group != group {
        return Err(Failure::Usage(format!(
            "--signature {} is of group `{}`, not `{group}`",
            signature.display(),
            sig.header().group
        )));
    }
    std::fs::create_dir_all(out_dir)
        .map_err(|e| replicore::Error::io("creating", Some(out_dir), e))?;
    let refs: Vec<(&str, &std::path::Path)> = list
        .iter()
        .map(|(n, p)| (n.as_str(), p.as_path()))
        .collect();
    let options = ResyncOptions {
        replace: force,
        ..ResyncOptions::default()
    };
    // The site's protection state must allow the resync (a test failover's copy does not).
    let dir = crate::ship_cmd::parent(log);
    let mut moves = crate::reverse_cmd::resync_moves(dir, group)?;
    crate::reverse_cmd::step(dir, group, &moves, false)?;
    let bar = Bar::new("resync ship");
    let r = resync_ship_from(
        sig,
        &refs,
        &key,
        log,
        out_dir,
        &options,
        &mut bar.callback(),
    )
    .map_err(|e| forceable(e.with_path(signature)))?;
    drop(bar);
    let state = crate::ship_cmd::state_path(crate::ship_cmd::parent(log), group);
    r.state.save(&state)?;
    moves.push(replicore::policy::ProtectionState::Protected);
    crate::reverse_cmd::step(dir, group, &moves, true)?;
    println!("{}", r.bundle.path.display());
    eprintln!(
        "group `{group}` resynchronized into its chain: point {} holds {} of {} chunks ({} of \
         data, a {} bundle); new log {}, ship state {}",
        r.bundle.seq,
        r.changed_chunks,
        r.chunks,
        bytes(r.bundle.plain_bytes),
        bytes(r.bundle.file_bytes),
        log.display(),
        state.display()
    );
    Ok(())
}
