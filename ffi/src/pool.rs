//! The worker pool: how many threads the library's parallel work (hashing, compression,
//! encryption, decoding) runs on.

use crate::handle::run;
use crate::status::replicore_status;

/// Sets the number of worker threads the library's parallel work runs on (0: one per core,
/// the default). The pool starts at the first call that works in parallel and lives as long as
/// the process (its threads sleep when idle), so call this first, before any other call; once
/// the pool runs, asking for another size is `REPLICORE_ERR_INVALID_ARGUMENT` (the same size is
/// `REPLICORE_OK`). The calls' own threads (the caller's, and one writer thread during a
/// failover or an ingest) are not counted.
#[unsafe(no_mangle)]
pub extern "C" fn replicore_set_thread_count(threads: u32) -> replicore_status {
    run(|| {
        let want = threads as usize;
        let built = rayon::ThreadPoolBuilder::new()
            .num_threads(want)
            .thread_name(|i| format!("replicore-{i}"))
            .build_global();
        if built.is_ok() {
            return Ok(());
        }
        let running = rayon::current_num_threads();
        let default = std::thread::available_parallelism().map_or(1, |n| n.get());
        if running == want || (want == 0 && running == default) {
            return Ok(());
        }
        Err(replicore::Error::invalid_argument(
            "threads",
            format!(
                "the worker pool already runs with {running} threads; call \
                 replicore_set_thread_count before any other replicore function"
            ),
        )
        .into())
    })
}
