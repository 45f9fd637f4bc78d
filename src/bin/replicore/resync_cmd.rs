//! `replicore resync ...`: signatures, deltas, apply, and a local resync.

use std::io::{BufReader, BufWriter};

use replicore::OutputFile;
use replicore::resync::{DEFAULT_CHUNK_SIZE, Delta, Signature, resync};

use crate::CmdResult;
use crate::args::{ResyncCmd, size};
use crate::out::{Bar, bytes, forceable};

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
    Ok(arg.map(size).transpose()?.unwrap_or(DEFAULT_CHUNK_SIZE))
}

pub fn run(c: ResyncCmd) -> CmdResult {
    match c {
        ResyncCmd::Signature {
            image,
            out,
            force,
            chunk_size,
        } => {
            let cs = chunk(chunk_size.as_deref())?;
            let mut w = create(&out, force)?;
            let bar = Bar::new("signature");
            let sig = Signature::compute(&image, cs, &mut bar.callback())?;
            drop(bar);
            sig.to_writer(&mut w)?;
            finish(w, &out)?;
            println!(
                "{}: {} chunks of {} over {}",
                out.display(),
                sig.disk_size().div_ceil(u64::from(cs)),
                bytes(u64::from(cs)),
                bytes(sig.disk_size())
            );
        }
        ResyncCmd::Delta {
            source,
            signature,
            out,
            force,
        } => {
            let f = std::fs::File::open(&signature)
                .map_err(|e| replicore::Error::io("opening the signature", Some(&signature), e))?;
            let sig = Signature::from_reader(BufReader::with_capacity(1 << 20, f))
                .map_err(|e| e.with_path(&signature))?;
            let mut w = create(&out, force)?;
            let bar = Bar::new("delta");
            let st = Delta::compute(&source, &sig, &mut w, &mut bar.callback())?;
            drop(bar);
            finish(w, &out)?;
            println!(
                "{}: {} of {} chunks differ, {} of data, delta {}",
                out.display(),
                st.data_chunks + st.zero_chunks,
                st.chunks,
                bytes(st.data_bytes),
                bytes(st.delta_bytes)
            );
        }
        ResyncCmd::Apply { target, delta } => {
            let bar = Bar::new("apply");
            let st = Delta::apply(&delta, &target, &mut bar.callback())?;
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
    }
    Ok(())
}
