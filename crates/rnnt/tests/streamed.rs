//! The streamed-store path end to end: a gradient of at least `STREAM_MIN_BYTES` is written with
//! non-temporal stores (rows staged in L1, runs of padding rows filled without reading the
//! logits), by `loss_and_grad_into` and by `backward`. Each item computed alone is too small to
//! stream, so comparing the batch with its items one by one compares the streamed writes with
//! the plain ones, ragged lengths, padding and a vocabulary that is no multiple of any vector
//! width included. It is also what the sanitizer run (`scripts/sanitize.sh`) uses to cover the
//! streamed stores.

mod common;

use common::OwnedInput;
use ndarray::{s, Array1, Array2, Array4};
use rnnt::{Options, Reduction, STREAM_MIN_BYTES};

#[test]
fn streamed_gradients_match_items_computed_alone() {
    // 4 × 128 × 32 × 1100 float32: 72 MB, each item 18 MB.
    let (b, t, u, v) = (4, 128, 31, 1100);
    let input = OwnedInput::<f32, i32> {
        logits: Array4::from_shape_fn((b, t, u + 1, v), |(b, t, u, k)| {
            ((b * 7 + t * 3 + u * 5 + k * 11) % 23) as f32 * 0.2 - 2.0
        }),
        padded: Some(Array2::from_shape_fn((b, u), |(b, u)| {
            1 + ((b + 3 * u) % 97) as i32
        })),
        packed: None,
        logit_lengths: Array1::from(vec![128, 100, 7, 128]),
        target_lengths: Array1::from(vec![31, 20, 3, 0]),
    };
    assert!(input.logits.len() * 4 >= STREAM_MIN_BYTES);
    let options = Options {
        blank: 0,
        reduction: Reduction::Sum,
        ..Options::default()
    };
    let mut one_shot = Array4::from_elem(input.logits.dim(), f32::NAN);
    let forward = rnnt::loss_and_grad_into(&input.view(), &options, one_shot.view_mut()).unwrap();
    let mut two_pass = Array4::from_elem(input.logits.dim(), f32::NAN);
    rnnt::backward(&input.view(), &forward, &[1.0; 4], two_pass.view_mut()).unwrap();
    for item in 0..b {
        let alone = OwnedInput::<f32, i32> {
            logits: input.logits.slice(s![item..=item, .., .., ..]).to_owned(),
            padded: Some(
                input
                    .padded
                    .as_ref()
                    .unwrap()
                    .slice(s![item..=item, ..])
                    .to_owned(),
            ),
            packed: None,
            logit_lengths: input.logit_lengths.slice(s![item..=item]).to_owned(),
            target_lengths: input.target_lengths.slice(s![item..=item]).to_owned(),
        };
        let want = rnnt::loss_and_grad(&alone.view(), &options).unwrap();
        let loss = forward.losses()[item];
        assert!(
            (loss - want.losses[0]).abs() <= 1e-9 * (1.0 + loss.abs()),
            "item {item}: loss {loss} against {}",
            want.losses[0]
        );
        for (path, grad) in [("loss_and_grad_into", &one_shot), ("backward", &two_pass)] {
            let got = grad.slice(s![item, .., .., ..]);
            for ((index, &g), &w) in got.indexed_iter().zip(want.grad.slice(s![0, .., .., ..])) {
                assert!(
                    (g - w).abs() <= 1e-6,
                    "{path}: item {item}, grad{index:?} = {g} against {w}"
                );
            }
        }
    }
}
