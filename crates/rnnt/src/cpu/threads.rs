//! Thread pools of the CPU backend (rayon), one per requested size, built once and reused.
//!
//! **Fork.** A child made by `fork` (DataLoader workers, `multiprocessing`) inherits the pools
//! but none of their threads: work handed to them would wait forever. So the pools belong to the
//! process that built them: a child builds its own on first use, and runs on one of those where
//! the parent used rayon's global pool. (A fork while another thread of the parent is inside
//! `run_in_pool` can still leave the child a held lock; forking from the thread that calls the
//! loss, between calls, is what DataLoader and `multiprocessing` do.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rayon::ThreadPool;

use crate::error::{Error, Result};

/// The environment variable that sets the default number of CPU threads.
pub const THREADS_ENV: &str = "RNNT_NUM_THREADS";

/// Runs `work` on a pool of `threads` workers (0: `RNNT_NUM_THREADS`, else rayon's global pool).
pub fn run_in_pool<R: Send>(threads: usize, work: impl FnOnce() -> R + Send) -> Result<R> {
    let threads = match threads {
        0 => threads_from_env()?,
        n => Some(n),
    };
    match threads {
        None if !forked() => Ok(work()),
        None => Ok(pool(rayon::current_num_threads())?.install(work)),
        Some(n) => Ok(pool(n)?.install(work)),
    }
}

/// Whether this process is a fork of the one that first ran work here (whose pools, rayon's
/// global one included, have no threads in this process).
fn forked() -> bool {
    static FIRST: OnceLock<u32> = OnceLock::new();
    *FIRST.get_or_init(std::process::id) != std::process::id()
}

/// The number of workers [`run_in_pool`] runs on for `threads`.
pub fn pool_size(threads: usize) -> Result<usize> {
    let threads = match threads {
        0 => threads_from_env()?,
        n => Some(n),
    };
    Ok(threads.unwrap_or_else(rayon::current_num_threads))
}

fn threads_from_env() -> Result<Option<usize>> {
    match std::env::var(THREADS_ENV) {
        Err(_) => Ok(None),
        Ok(text) => match text.trim().parse::<usize>() {
            Ok(0) => Ok(None),
            Ok(n) => Ok(Some(n)),
            Err(_) => Err(Error::Value(format!(
                "{THREADS_ENV} = {text:?} is not a non-negative integer"
            ))),
        },
    }
}

/// The pool of `threads` workers of this process, built on first use.
fn pool(threads: usize) -> Result<Arc<ThreadPool>> {
    /// The process the pools belong to, and its pools by size.
    type Pools = (u32, HashMap<usize, Arc<ThreadPool>>);
    static POOLS: OnceLock<Mutex<Pools>> = OnceLock::new();
    let mut guard = POOLS
        .get_or_init(|| Mutex::new((std::process::id(), HashMap::new())))
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let (owner, pools) = &mut *guard;
    if *owner != std::process::id() {
        // A fork's copy of the parent's pools: their threads are not in this process, so they are
        // neither used nor dropped (dropping one signals threads that do not exist).
        std::mem::forget(std::mem::take(pools));
        *owner = std::process::id();
    }
    if let Some(pool) = pools.get(&threads) {
        return Ok(Arc::clone(pool));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("rnnt-cpu-{i}"))
        .build()
        .map_err(|e| Error::Unavailable(format!("cannot start {threads} CPU threads: {e}")))?;
    let pool = Arc::new(pool);
    pools.insert(threads, Arc::clone(&pool));
    Ok(pool)
}
