//! `replicore resync ...`: signatures, deltas, apply, and a local resync.

use std::io::{BufReader, BufWriter, Write};

use replicore::resync::{DEFAULT_CHUNK_SIZE, Delta, Signature, resync};

use crate::CmdResult;
use crate::args::{ResyncCmd, size};
use crate::out::{Bar, bytes};

fn create(path: &std::path::Path) -> Result<BufWriter<std::fs::File>, replicore::Error> {
    std::fs::File::create(path)
        .map(|f| BufWriter::with_capacity(1 << 20, f))
        .map_err(|e| replicore::Error::io("creating", Some(path), e))
}

fn finish(mut w: BufWriter<std::fs::File>, path: &std::path::Path) -> Result<(), replicore::Error> {
    w.flush()
        .and_then(|()| w.get_ref().sync_all())
        .map_err(|e| replicore::Error::io("writing", Some(path), e))
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
            chunk_size,
        } => {
            let cs = chunk(chunk_size.as_deref())?;
            let bar = Bar::new("signature");
            let sig = Signature::compute(&image, cs, &mut bar.callback())?;
            drop(bar);
            let mut w = create(&out)?;
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
        } => {
            let f = std::fs::File::open(&signature)
                .map_err(|e| replicore::Error::io("opening the signature", Some(&signature), e))?;
            let sig = Signature::from_reader(BufReader::with_capacity(1 << 20, f))
                .map_err(|e| e.with_path(&signature))?;
            let mut w = create(&out)?;
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
