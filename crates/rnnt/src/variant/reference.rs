//! The plain float64 reference of every variant: the oracle of the fast passes, in the style of
//! [`crate::reference`]. Every row is log-softmaxed in full in f64, α and β are nested vectors
//! over the topology's arcs (`arcs`, the one definition of each topology), and the gradient of
//! each head follows the chain rule element by element.

use ndarray::{Array, ArrayView, Dimension};

use crate::batch::{Batch, ScoresDim};
use crate::element::{Float, Index};
use crate::error::Result;
use crate::logspace::log_add_exp;
use crate::options::Options;
use crate::variant::arcs::{big_blank, Dest, ItemShape, BLANK, LABEL};
use crate::variant::topology::Variant;
use crate::variant::{validated, VariantInput};

/// What the reference computes for a batch.
#[derive(Debug, Clone)]
pub struct VariantReference<D: Dimension> {
    /// Per-item losses (+inf for an impossible item, 0 with `zero_infinity`).
    pub losses: Vec<f64>,
    /// The reported loss after the reduction.
    pub loss: f64,
    /// d loss / d token head in f64, the head's shape; 0 in padding.
    pub grad: Array<f64, D>,
    /// d loss / d duration head (TDT).
    pub duration_grad: Option<Array<f64, D>>,
}

/// log_softmax of a row in f64 (the row itself for log-probs input).
fn log_softmax(row: &[f64], fused: bool) -> Vec<f64> {
    if !fused {
        return row.to_vec();
    }
    let lse = row
        .iter()
        .fold(f64::NEG_INFINITY, |a, &x| log_add_exp(a, x));
    row.iter()
        .map(|&x| {
            if lse == f64::NEG_INFINITY {
                f64::NEG_INFINITY
            } else {
                x - lse
            }
        })
        .collect()
}

/// The rows of a head as f64 vectors, by row index.
fn head_rows<F: Float, D: ScoresDim>(head: &ArrayView<'_, F, D>) -> Vec<Vec<f64>> {
    let width = *head.shape().last().expect("heads have axes");
    let values: Vec<f64> = head.iter().map(|x| x.to_f64()).collect();
    values.chunks(width.max(1)).map(<[f64]>::to_vec).collect()
}

/// Computes losses and both heads' gradients of the reduced loss in plain f64.
///
/// # Errors
/// As [`crate::variant::forward`].
pub fn loss_and_grad<F: Float, I: Index, D: ScoresDim>(
    input: &VariantInput<'_, F, I, D>,
    options: &Options,
    variant: &Variant,
) -> Result<VariantReference<D>> {
    let (batch, heads) = validated(input, options, variant)?;
    let tokens = head_rows(&input.logits);
    let durations = input.duration_logits.as_ref().map(head_rows);
    for b in 0..batch.batch_size {
        for t in 0..batch.frames(b) {
            for u in 0..=batch.labels(b).len() {
                let r = batch.row(b, t, u);
                let bad = |row: &[f64]| row.iter().any(|x| x.is_nan() || *x == f64::INFINITY);
                if bad(&tokens[r]) {
                    return Err(batch.non_finite_score(
                        heads.tokens.row(r),
                        heads.token_name,
                        (b, t, u),
                    ));
                }
                if let (Some(d), Some(rows)) = (&durations, &heads.durations) {
                    if bad(&d[r]) {
                        return Err(batch.non_finite_score(
                            rows.row(r),
                            "duration_logits",
                            (b, t, u),
                        ));
                    }
                }
            }
        }
    }
    let weights = options.reduction.item_weights(1.0, batch.batch_size);
    let vocab = batch.vocab;
    let columns = variant.topology.duration_columns();
    let mut grad = vec![vec![0.0; vocab]; tokens.len()];
    let mut duration_grad = vec![vec![0.0; columns]; tokens.len()];
    let mut losses = Vec::with_capacity(batch.batch_size);
    for (b, &weight) in weights.iter().enumerate() {
        let item = reference_item(&batch, b, variant, options, (&tokens, durations.as_deref()));
        losses.push(match item.log_p {
            p if p == f64::NEG_INFINITY && options.zero_infinity => 0.0,
            p => -p,
        });
        for row in item.rows {
            let clip = |v: f64| match options.clip_bound() {
                Some(c) => v.clamp(-c, c),
                None => v,
            };
            grad[row.row] = row.tokens.into_iter().map(|v| weight * clip(v)).collect();
            duration_grad[row.row] = row
                .durations
                .into_iter()
                .map(|v| weight * clip(v))
                .collect();
        }
    }
    let shaped = |rows: Vec<Vec<f64>>, dim: D| {
        Array::from_shape_vec(dim, rows.concat()).expect("one row per row of the head")
    };
    let loss = options.reduction.reduce(&losses);
    Ok(VariantReference {
        losses,
        loss,
        grad: shaped(grad, input.logits.raw_dim()),
        duration_grad: input
            .duration_logits
            .map(|d| shaped(duration_grad, d.raw_dim())),
    })
}

/// One node's gradient rows, before the clip and the item's weight.
struct RowGrads {
    /// The node's row in the heads.
    row: usize,
    /// d loss / d token row.
    tokens: Vec<f64>,
    /// d loss / d duration row (empty without a duration head).
    durations: Vec<f64>,
}

/// One item's ln P and its gradient rows.
struct ItemReference {
    log_p: f64,
    rows: Vec<RowGrads>,
}

/// α, β and the gradient of one item.
fn reference_item(
    batch: &Batch,
    b: usize,
    variant: &Variant,
    options: &Options,
    (tokens, durations): (&[Vec<f64>], Option<&[Vec<f64>]>),
) -> ItemReference {
    let fused = options.fused_log_softmax;
    let labels = batch.labels(b);
    let shape = ItemShape::new(&variant.topology, batch.frames(b), labels.len());
    let (frames, positions) = (shape.frames, shape.positions);
    // lp[t][u][k], ld[t][u][i] for every node with a row.
    let lp: Vec<Vec<Vec<f64>>> = (0..frames)
        .map(|t| {
            (0..positions)
                .map(|u| log_softmax(&tokens[batch.row(b, t, u)], fused))
                .collect()
        })
        .collect();
    let ld: Vec<Vec<Vec<f64>>> = (0..frames)
        .map(|t| {
            (0..positions)
                .map(|u| {
                    durations.map_or_else(Vec::new, |d| log_softmax(&d[batch.row(b, t, u)], fused))
                })
                .collect()
        })
        .collect();
    let column = |u: usize, slot: usize| match slot {
        BLANK => batch.blank,
        LABEL => labels[u] as usize,
        s => batch.blank - 1 - (s - big_blank(0)),
    };
    let mut arcs = Vec::new();
    let weight = |arc: &crate::variant::arcs::Arc, t: usize, u: usize| {
        let mut w = arc.bonus;
        for &(ru, slot) in &arc.reads[..arc.token_reads] {
            w += lp[t][ru][column(ru, slot)];
        }
        if let Some(i) = arc.duration {
            w += ld[t][u][i];
        }
        w
    };
    let node_frames = shape.node_frames;
    let mut alpha = vec![vec![f64::NEG_INFINITY; positions]; node_frames];
    alpha[0][0] = 0.0;
    for t in 0..node_frames {
        for u in 0..positions {
            variant.arcs(shape, (t, u), &mut arcs);
            for arc in &arcs {
                if let Dest::Node(dt, du) = arc.dest {
                    alpha[dt][du] = log_add_exp(alpha[dt][du], alpha[t][u] + weight(arc, t, u));
                }
            }
        }
    }
    let mut beta = vec![vec![f64::NEG_INFINITY; positions]; node_frames];
    for t in (0..node_frames).rev() {
        for u in (0..positions).rev() {
            variant.arcs(shape, (t, u), &mut arcs);
            let mut acc = f64::NEG_INFINITY;
            for arc in &arcs {
                let rest = match arc.dest {
                    Dest::Node(dt, du) => beta[dt][du],
                    Dest::End => 0.0,
                };
                acc = log_add_exp(acc, weight(arc, t, u) + rest);
            }
            beta[t][u] = acc;
        }
    }
    let log_p = beta[0][0];
    let mut rows = Vec::new();
    // d loss / d lp and d loss / d ld per node: minus each reading arc's occupancy.
    let mut d_lp = vec![vec![vec![0.0; batch.vocab]; positions]; frames];
    let mut d_ld =
        vec![
            vec![vec![0.0; ld.first().and_then(|f| f.first()).map_or(0, Vec::len)]; positions];
            frames
        ];
    if log_p > f64::NEG_INFINITY {
        for t in 0..node_frames {
            for u in 0..positions {
                variant.arcs(shape, (t, u), &mut arcs);
                for arc in &arcs {
                    let rest = match arc.dest {
                        Dest::Node(dt, du) => beta[dt][du],
                        Dest::End => 0.0,
                    };
                    let occupancy = (alpha[t][u] + weight(arc, t, u) + rest - log_p).exp();
                    if occupancy.is_nan() || occupancy <= 0.0 {
                        continue;
                    }
                    let scale = if arc.label {
                        1.0 + options.fastemit_lambda
                    } else {
                        1.0
                    };
                    for &(ru, slot) in &arc.reads[..arc.token_reads] {
                        d_lp[t][ru][column(ru, slot)] -= scale * occupancy;
                    }
                    if let Some(i) = arc.duration {
                        d_ld[t][u][i] -= occupancy;
                    }
                }
            }
        }
    }
    // The chain rule through log_softmax: d x_k = d lp_k − softmax_k · Σ_j d lp_j.
    let chain = |d: &[f64], lp: &[f64]| -> Vec<f64> {
        let total: f64 = d.iter().sum();
        d.iter()
            .zip(lp)
            .map(|(&dk, &lk)| {
                if fused && total != 0.0 {
                    dk - total * lk.exp()
                } else {
                    dk
                }
            })
            .collect()
    };
    for t in 0..frames {
        for u in 0..positions {
            rows.push(RowGrads {
                row: batch.row(b, t, u),
                tokens: chain(&d_lp[t][u], &lp[t][u]),
                durations: chain(&d_ld[t][u], &ld[t][u]),
            });
        }
    }
    ItemReference { log_p, rows }
}
