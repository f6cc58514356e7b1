//! Thread pools of the CPU backend (rayon), one per requested size, built once and reused.

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
        None => Ok(work()),
        Some(n) => Ok(pool(n)?.install(work)),
    }
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

fn pool(threads: usize) -> Result<Arc<ThreadPool>> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<ThreadPool>>>> = OnceLock::new();
    let mut pools = POOLS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
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
