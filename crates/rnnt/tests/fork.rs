//! A child made by `fork` after the parent used the thread pools (what DataLoader workers and
//! `multiprocessing` do) computes the loss, and the same loss as the parent: it used to hang
//! forever, waiting on pool threads that exist only in the parent.
//!
//! Its own test binary: the child of a fork has only the forking thread, so no other test may run
//! beside it.
#![cfg(target_os = "linux")]

mod common;

use std::time::{Duration, Instant};

use common::OwnedInput;
use ndarray::{Array1, Array2, Array4};
use rnnt::{Options, Reduction};

/// B = 8 ragged items and one long one (its lattice of 200 × 101 nodes is walked by two threads).
fn input() -> OwnedInput<f32, i32> {
    let (b, t, u, v) = (9, 200, 100, 5);
    let logit_lengths: Array1<i32> = (0..b)
        .map(|i| if i == 0 { 200 } else { 3 + i as i32 })
        .collect();
    let target_lengths: Array1<i32> = (0..b)
        .map(|i| if i == 0 { 100 } else { i as i32 % 3 })
        .collect();
    OwnedInput {
        logits: Array4::from_shape_fn((b, t, u + 1, v), |(b, t, u, k)| {
            ((b + 3 * t + 5 * u + 7 * k) % 11) as f32 * 0.25
        }),
        padded: Some(Array2::from_shape_fn((b, u), |(b, u)| {
            1 + ((b + u) % 4) as i32
        })),
        packed: None,
        logit_lengths,
        target_lengths,
    }
}

/// Losses and gradient bits on the default threads, one thread and three.
fn losses_and_grads(input: &OwnedInput<f32, i32>) -> Vec<(Vec<f64>, Vec<u32>)> {
    [0, 1, 3]
        .into_iter()
        .map(|threads| {
            let options = Options {
                blank: 0,
                reduction: Reduction::Sum,
                threads,
                ..Options::default()
            };
            let out = rnnt::loss_and_grad(&input.view(), &options).unwrap();
            (out.losses, out.grad.iter().map(|g| g.to_bits()).collect())
        })
        .collect()
}

#[test]
fn a_forked_child_computes_the_loss() {
    let input = input();
    let parent = losses_and_grads(&input);
    // SAFETY: the child runs only this test's code (this binary has no other test running) and
    // leaves by `_exit`, never returning into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let same = std::panic::catch_unwind(|| losses_and_grads(&input) == parent);
        // SAFETY: `_exit` ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(if matches!(same, Ok(true)) { 0 } else { 1 }) };
    }
    let start = Instant::now();
    let mut status = 0;
    loop {
        // SAFETY: waiting on our own child with a valid pointer to `status`.
        let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if done == pid {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("the forked child hung computing the loss");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the forked child's results differ from the parent's (status {status})"
    );
}
