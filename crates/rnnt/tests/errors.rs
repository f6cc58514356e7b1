//! One test per bad input of DESIGN.md §5: each gives an error value whose message names the
//! argument and the offending value; none panics.

mod common;

use common::OwnedInput;
use ndarray::{s, Array1, Array2, Array4};
use rnnt::{Error, LossInput, Options, Reduction, ScoresDim};

/// A valid batch: B=2, T=3, U=2, V=4, blank = 3 (the default −1).
fn valid() -> OwnedInput<f32, i32> {
    OwnedInput {
        logits: Array4::from_shape_fn((2, 3, 3, 4), |(b, t, u, k)| {
            ((b + 2 * t + 3 * u + 5 * k) % 7) as f32 * 0.3
        }),
        padded: Some(Array2::from_shape_vec((2, 2), vec![0, 1, 2, 0]).unwrap()),
        packed: None,
        logit_lengths: Array1::from(vec![3, 2]),
        target_lengths: Array1::from(vec![2, 1]),
    }
}

fn error_of<D: ScoresDim>(input: &LossInput<'_, f32, i32, D>, options: &Options) -> Error {
    match rnnt::loss_and_grad(input, options) {
        Ok(_) => panic!("expected an error"),
        Err(e) => {
            // The reference validates identically.
            assert_eq!(
                rnnt::reference::loss_and_grad(input, options).unwrap_err(),
                e
            );
            e
        }
    }
}

fn message(input: &OwnedInput<f32, i32>) -> String {
    error_of(&input.view(), &Options::default()).to_string()
}

#[test]
fn valid_input_passes() {
    assert!(rnnt::loss_and_grad(&valid().view(), &Options::default()).is_ok());
}

#[test]
fn label_out_of_range() {
    let mut input = valid();
    input.padded.as_mut().unwrap()[[1, 0]] = 4;
    assert_eq!(
        message(&input),
        "targets[1][0] = 4 is out of range for V = 4"
    );
}

#[test]
fn negative_label() {
    let mut input = valid();
    input.padded.as_mut().unwrap()[[0, 1]] = -2;
    assert_eq!(
        message(&input),
        "targets[0][1] = -2 is out of range for V = 4"
    );
}

#[test]
fn label_equal_to_blank() {
    let mut input = valid();
    input.padded.as_mut().unwrap()[[0, 0]] = 3;
    assert_eq!(
        message(&input),
        "targets[0][0] = 3 is the blank id: labels within target_lengths must not be blank"
    );
}

#[test]
fn padding_labels_are_not_checked() {
    let mut input = valid();
    input.padded.as_mut().unwrap()[[1, 1]] = 99; // past target_lengths[1] = 1
    assert!(rnnt::loss_and_grad(&input.view(), &Options::default()).is_ok());
}

#[test]
fn packed_label_out_of_range_and_count() {
    let mut input = valid();
    input.padded = None;
    input.packed = Some(Array1::from(vec![0, 1, 9]));
    assert_eq!(message(&input), "targets[2] = 9 is out of range for V = 4");
    input.packed = Some(Array1::from(vec![0, 1]));
    assert_eq!(
        message(&input),
        "targets is packed with 2 labels but sum(target_lengths) = 3"
    );
}

#[test]
fn zero_frames() {
    let mut input = valid();
    input.logit_lengths[1] = 0;
    assert_eq!(
        message(&input),
        "logit_lengths[1] = 0 is below 1: every sequence needs at least one frame"
    );
}

#[test]
fn too_many_frames() {
    let mut input = valid();
    input.logit_lengths[0] = 4;
    assert_eq!(
        message(&input),
        "logit_lengths[0] = 4 exceeds T = logits.shape[1] = 3"
    );
}

#[test]
fn negative_target_length() {
    let mut input = valid();
    input.target_lengths[0] = -1;
    assert_eq!(message(&input), "target_lengths[0] = -1 is below 0");
}

#[test]
fn too_many_labels() {
    let mut input = valid();
    input.target_lengths[1] = 3;
    assert_eq!(
        message(&input),
        "target_lengths[1] = 3 exceeds U = logits.shape[2] - 1 = 2"
    );
}

#[test]
fn target_length_wider_than_targets() {
    let mut input = valid();
    input.padded = Some(Array2::from_shape_vec((2, 1), vec![0, 1]).unwrap());
    assert_eq!(
        message(&input),
        "target_lengths[0] = 2 exceeds targets.shape[1] = 1"
    );
}

#[test]
fn mismatched_batch_sizes() {
    let mut input = valid();
    input.logit_lengths = Array1::from(vec![3, 2, 1]);
    assert_eq!(
        message(&input),
        "logit_lengths has shape (3,) but the batch has B = 2 items"
    );
    let mut input = valid();
    input.target_lengths = Array1::from(vec![1]);
    assert_eq!(
        message(&input),
        "target_lengths has shape (1,) but the batch has B = 2 items"
    );
    let mut input = valid();
    input.padded = Some(Array2::zeros((3, 2)));
    assert_eq!(
        message(&input),
        "targets has shape (3, 2) but the batch has B = 2 items"
    );
}

#[test]
fn blank_out_of_range() {
    let input = valid();
    for blank in [4, -5] {
        let options = Options {
            blank,
            ..Options::default()
        };
        assert_eq!(
            error_of(&input.view(), &options).to_string(),
            format!("blank = {blank} is out of range for V = 4 (allowed: -4 <= blank < 4)")
        );
    }
}

#[test]
fn empty_dimension() {
    let mut input = valid();
    input.logits = Array4::zeros((2, 3, 3, 0));
    assert_eq!(
        message(&input),
        "logits has shape (2, 3, 3, 0): (B, T, U+1, V) must all be at least 1"
    );
}

#[test]
fn non_contiguous_logits() {
    let input = valid();
    let wide = Array4::<f32>::zeros((2, 3, 3, 8));
    let strided = wide.slice(s![.., .., .., ..;2]);
    let view = LossInput {
        logits: strided,
        ..input.view()
    };
    assert_eq!(
        error_of(&view, &Options::default()),
        Error::Layout(
            "logits must be C-contiguous (row-major, no strides); make a contiguous copy".into()
        )
    );
}

#[test]
fn nan_and_infinite_logits() {
    let mut input = valid();
    input.logits[[1, 1, 0, 2]] = f32::NAN;
    assert_eq!(
        message(&input),
        "logits[1][1][0][2] = NaN: values within the lengths must be finite or -inf"
    );
    let mut input = valid();
    input.logits[[0, 2, 1, 0]] = f32::INFINITY;
    assert_eq!(
        message(&input),
        "logits[0][2][1][0] = inf: values within the lengths must be finite or -inf"
    );
    let options = Options {
        fused_log_softmax: false,
        ..Options::default()
    };
    assert_eq!(
        error_of(&input.view(), &options).to_string(),
        "log_probs[0][2][1][0] = inf: values within the lengths must be finite or -inf"
    );
}

#[test]
fn nan_in_padding_is_ignored_and_gets_zero_gradient() {
    let mut input = valid();
    input.logits.slice_mut(s![1, 2, .., ..]).fill(f32::NAN); // frame 2 of item 1 (T_1 = 2)
    input.logits.slice_mut(s![1, .., 2, ..]).fill(f32::INFINITY); // position 2 of item 1 (U_1 = 1)
    let out = rnnt::loss_and_grad(&input.view(), &Options::default()).unwrap();
    assert!(out.losses.iter().all(|l| l.is_finite()));
    assert!(out.grad.slice(s![1, 2, .., ..]).iter().all(|&g| g == 0.0));
    assert!(out.grad.slice(s![1, .., 2, ..]).iter().all(|&g| g == 0.0));
}

#[test]
fn bad_options() {
    let input = valid();
    let options = Options {
        fastemit_lambda: -0.5,
        ..Options::default()
    };
    assert_eq!(
        error_of(&input.view(), &options).to_string(),
        "fastemit_lambda = -0.5 must be finite and >= 0"
    );
    let options = Options {
        clamp: f64::NAN,
        ..Options::default()
    };
    assert_eq!(
        error_of(&input.view(), &options).to_string(),
        "clamp = NaN: use a value <= 0 to disable clipping"
    );
    assert_eq!(
        "average".parse::<Reduction>().unwrap_err().to_string(),
        "reduction = \"average\" is not one of \"none\", \"sum\", \"mean\""
    );
}

#[test]
fn backward_checks_its_buffers() {
    let input = valid();
    let forward = rnnt::forward(&input.view(), &Options::default()).unwrap();
    let mut small = Array4::<f32>::zeros((2, 3, 3, 3));
    assert_eq!(
        rnnt::backward(&input.view(), &forward, &[1.0, 1.0], small.view_mut())
            .unwrap_err()
            .to_string(),
        "grad has shape (2, 3, 3, 3) but the input has (2, 3, 3, 4)"
    );
    let mut grad = Array4::<f32>::zeros((2, 3, 3, 4));
    assert_eq!(
        rnnt::backward(&input.view(), &forward, &[1.0], grad.view_mut())
            .unwrap_err()
            .to_string(),
        "item_weights has 1 entries but the batch has B = 2 items"
    );
    let mut wide = Array4::<f32>::zeros((2, 3, 3, 8));
    let strided = wide.slice_mut(s![.., .., .., ..;2]);
    assert_eq!(
        rnnt::backward(&input.view(), &forward, &[1.0, 1.0], strided)
            .unwrap_err()
            .to_string(),
        "grad must be C-contiguous"
    );
}

#[test]
fn fastemit_changes_the_gradient_not_the_loss() {
    let input = valid();
    let plain = rnnt::loss_and_grad(&input.view(), &Options::default()).unwrap();
    let options = Options {
        fastemit_lambda: 0.3,
        ..Options::default()
    };
    let fast_emit = rnnt::loss_and_grad(&input.view(), &options).unwrap();
    assert_eq!(plain.losses, fast_emit.losses);
    assert_ne!(plain.grad, fast_emit.grad);
    // Through log_softmax every row of the gradient still sums to zero.
    for row in fast_emit.grad.rows() {
        assert!(row.sum().abs() < 1e-6, "row sums to {}", row.sum());
    }
}

#[test]
fn packed_logits_must_hold_the_rows_the_lengths_describe() {
    // T = (3, 2), U = (2, 1): 3·3 + 2·2 = 13 rows.
    let input = valid();
    let packed = input.packed_logits();
    assert_eq!(packed.dim(), (13, 4));
    assert!(rnnt::loss_and_grad(&input.view_with(packed.view()), &Options::default()).is_ok());
    for rows in [12, 14] {
        let wrong = Array2::<f32>::zeros((rows, 4));
        assert_eq!(
            error_of(&input.view_with(wrong.view()), &Options::default()),
            Error::Shape(format!(
                "logits is packed with {rows} rows but the lengths describe \
                 sum(logit_lengths[b] * (target_lengths[b] + 1)) = 13"
            ))
        );
    }
    let empty = Array2::<f32>::zeros((13, 0));
    assert_eq!(
        error_of(&input.view_with(empty.view()), &Options::default()).to_string(),
        "logits has shape (13, 0) and logit_lengths 2 entries: packed (sum of T_b*(U_b+1), V) \
         scores need V and B at least 1"
    );
    let mut short = input.clone();
    short.logit_lengths[1] = 0;
    assert_eq!(
        error_of(&short.view_with(packed.view()), &Options::default()).to_string(),
        "logit_lengths[1] = 0 is below 1: every sequence needs at least one frame"
    );
    let mut long = input.clone();
    long.logit_lengths[0] = i32::MAX;
    long.target_lengths[0] = 0;
    assert_eq!(
        error_of(&long.view_with(packed.view()), &Options::default()).to_string(),
        "logits is packed with 13 rows but the lengths describe \
         sum(logit_lengths[b] * (target_lengths[b] + 1)) = 2147483651"
    );
}

#[test]
fn nan_in_packed_logits_names_its_row() {
    let input = valid();
    let mut packed = input.packed_logits();
    // Item 1 starts at row 9; its frame 1, position 0 is row 9 + 1·2 + 0 = 11.
    packed[[11, 2]] = f32::NAN;
    assert_eq!(
        error_of(&input.view_with(packed.view()), &Options::default()).to_string(),
        "logits[11][2] = NaN (item 1, frame 1, label position 0): values within the lengths must \
         be finite or -inf"
    );
}

#[test]
fn backward_checks_the_layout_forward_saw() {
    let input = valid();
    let packed = input.packed_logits();
    let packed_view = input.view_with(packed.view());
    let padded_forward = rnnt::forward(&input.view(), &Options::default()).unwrap();
    let mut grad = Array2::<f32>::zeros((13, 4));
    assert_eq!(
        rnnt::backward(&packed_view, &padded_forward, &[1.0, 1.0], grad.view_mut())
            .unwrap_err()
            .to_string(),
        "logits has shape (13, 4) but forward saw (2, 3, 3, 4)"
    );
    let packed_forward = rnnt::forward(&packed_view, &Options::default()).unwrap();
    let mut small = Array2::<f32>::zeros((12, 4));
    assert_eq!(
        rnnt::backward(&packed_view, &packed_forward, &[1.0, 1.0], small.view_mut())
            .unwrap_err()
            .to_string(),
        "grad has shape (12, 4) but the input has (13, 4)"
    );
    let mut padded_grad = Array4::<f32>::zeros((2, 3, 3, 4));
    assert_eq!(
        rnnt::backward(
            &input.view(),
            &packed_forward,
            &[1.0, 1.0],
            padded_grad.view_mut()
        )
        .unwrap_err()
        .to_string(),
        "logits has shape (2, 3, 3, 4) but forward saw (13, 4)"
    );
}

#[test]
fn shape_whose_element_count_overflows() {
    // A backend whose scores live elsewhere declares their shape: B·T·(U+1)·V must be countable.
    let targets = Array2::<i64>::zeros((4, 0));
    let lengths = Array1::<i64>::ones(4);
    let error = rnnt::Batch::for_shape(
        (4, 1 << 31, 1 << 31, 1 << 2),
        &rnnt::Targets::Padded(targets.view()),
        (lengths.view(), lengths.view()),
        -1,
        "logits",
    )
    .unwrap_err();
    assert_eq!(
        error,
        Error::Shape(
            "logits has shape (4, 2147483648, 2147483648, 4): B·T·(U+1)·V overflows the address \
             space"
                .into()
        )
    );
}
