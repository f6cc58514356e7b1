//! The variants' cases (`tests/golden-variants/README.md`) on the command line: `rnnt loss
//! --variant …` and the variant cases of `rnnt check`.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use ndarray::{ArrayD, Ix1, Ix2, Ix4};
use rnnt::variant::{self, VariantInput};
use rnnt::{Float, Options, ScoresDim, Targets, Topology, Variant};
use rnnt_cases::variants::NamedArray;

/// The arrays of a case, by name.
pub type Arrays = BTreeMap<String, NamedArray>;

/// Losses and gradients of one variant call, in f64.
pub struct Outcome {
    /// Per-item losses.
    pub losses: Vec<f64>,
    /// The reported loss.
    pub loss: f64,
    /// d loss / d token head (the input's shape).
    pub grad: ArrayD<f64>,
    /// d loss / d duration head (TDT).
    pub duration_grad: Option<ArrayD<f64>>,
}

/// A number option: the flag's value, else the case's (an array or the manifest), else 0.
fn number(arrays: &Arrays, options: &serde_json::Map<String, serde_json::Value>, key: &str) -> f64 {
    arrays
        .get(key)
        .and_then(|a| a.to_f64().iter().next().copied())
        .or_else(|| options.get(key).and_then(serde_json::Value::as_f64))
        .unwrap_or(0.0)
}

/// An integer list option from the case's arrays or the manifest.
fn list(
    arrays: &Arrays,
    options: &serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Option<Vec<i64>> {
    arrays
        .get(key)
        .and_then(NamedArray::to_i64)
        .map(|a| a.iter().copied().collect())
        .or_else(|| {
            options
                .get(key)
                .and_then(serde_json::Value::as_array)
                .map(|values| {
                    values
                        .iter()
                        .filter_map(serde_json::Value::as_i64)
                        .collect()
                })
        })
}

/// The variant named `kind` (the manifest's `variant`, or `--variant`), its options from the
/// case's arrays or the manifest's `options`, overridden by `sigma` / `delay_penalty` flags;
/// returns it with FastEmit's λ.
pub fn variant_of(
    kind: &str,
    arrays: &Arrays,
    options: &serde_json::Map<String, serde_json::Value>,
    (sigma, delay_penalty): (Option<f64>, Option<f64>),
) -> anyhow::Result<(Variant, f64)> {
    let sigma = sigma.unwrap_or_else(|| number(arrays, options, "sigma"));
    let delay = delay_penalty.unwrap_or_else(|| number(arrays, options, "delay_penalty"));
    let terminal_blank = options
        .get("terminal_blank")
        .and_then(serde_json::Value::as_bool)
        == Some(true);
    let need = |key: &str| {
        list(arrays, options, key)
            .with_context(|| format!("--variant {kind} needs `{key}` in the .npz"))
    };
    let variant = match kind {
        "tdt" => Variant::from_names(
            "regular",
            false,
            Some(&need("durations")?),
            None,
            (sigma, delay),
        ),
        "multiblank" => Variant::from_names(
            "regular",
            false,
            None,
            Some(&need("big_blank_durations")?),
            (sigma, delay),
        ),
        "modified" | "constrained" | "regular" => {
            Variant::from_names(kind, terminal_blank, None, None, (sigma, delay))
        }
        "delay_penalty" | "fastemit" => {
            Variant::from_names("regular", false, None, None, (sigma, delay))
        }
        other => {
            bail!("variant {other:?} is not one of regular, tdt, multiblank, modified, constrained")
        }
    }?;
    Ok((variant, number(arrays, options, "fastemit_lambda")))
}

/// A variant case named on the command line: its arrays, the variant `kind` with the flags'
/// `sigma` / `delay_penalty` overrides, and the options of `case` (blank: the flag, else the
/// file's, else −1; input mode; threads).
pub fn read_case(
    case: &crate::case_input::CaseArgs,
    kind: &str,
    overrides: (Option<f64>, Option<f64>),
) -> anyhow::Result<(Arrays, Variant, Options)> {
    let arrays = rnnt_cases::variants::read_arrays(&case.input)?;
    let (variant, _) = variant_of(kind, &arrays, &serde_json::Map::new(), overrides)?;
    let blank = case.blank.unwrap_or_else(|| {
        arrays
            .get("blank")
            .and_then(NamedArray::to_i64)
            .and_then(|b| b.iter().next().copied())
            .unwrap_or(-1)
    });
    let options = Options {
        blank,
        fused_log_softmax: !case.log_probs,
        threads: case.threads,
        ..Options::default()
    };
    Ok((arrays, variant, options))
}

/// The token head's array name for `variant`.
pub fn token_array(variant: &Variant) -> &'static str {
    if matches!(variant.topology, Topology::Tdt { .. }) {
        "token_logits"
    } else {
        "logits"
    }
}

/// Something to do with a variant's input of any element type and rank.
trait Call {
    /// The result.
    type Out;
    /// Does it.
    fn call<F: Float, D: ScoresDim>(
        &self,
        input: &VariantInput<'_, F, i64, D>,
    ) -> rnnt::Result<Self::Out>;
}

/// The loss and gradients, in f64.
struct Loss<'a>(&'a Variant, &'a Options);

impl Call for Loss<'_> {
    type Out = Outcome;
    fn call<F: Float, D: ScoresDim>(
        &self,
        input: &VariantInput<'_, F, i64, D>,
    ) -> rnnt::Result<Outcome> {
        let out = variant::loss_and_grad(input, self.1, self.0)?;
        Ok(Outcome {
            losses: out.losses,
            loss: out.loss,
            grad: out.grad.mapv(F::to_f64).into_dyn(),
            duration_grad: out.duration_grad.map(|d| d.mapv(F::to_f64).into_dyn()),
        })
    }
}

/// The alignments.
struct Align<'a>(&'a Variant, &'a Options);

impl Call for Align<'_> {
    type Out = Vec<rnnt::Alignment>;
    fn call<F: Float, D: ScoresDim>(
        &self,
        input: &VariantInput<'_, F, i64, D>,
    ) -> rnnt::Result<Self::Out> {
        variant::align(input, self.1, self.0)
    }
}

/// Runs the variant's fast loss on the case's arrays in their stored dtype.
pub fn run(arrays: &Arrays, variant: &Variant, options: &Options) -> anyhow::Result<Outcome> {
    dispatch(arrays, variant, &Loss(variant, options))
}

/// Aligns every item of the case on the variant's lattice.
pub fn align(
    arrays: &Arrays,
    variant: &Variant,
    options: &Options,
) -> anyhow::Result<Vec<rnnt::Alignment>> {
    dispatch(arrays, variant, &Align(variant, options))
}

/// `call` on the case's arrays in their stored dtype and rank.
fn dispatch<C: Call>(arrays: &Arrays, variant: &Variant, call: &C) -> anyhow::Result<C::Out> {
    let name = token_array(variant);
    let tokens = arrays
        .get(name)
        .with_context(|| format!("the .npz holds no `{name}`"))?;
    match tokens {
        NamedArray::F32(_) => dispatch_as::<f32, C>(arrays, variant, call),
        NamedArray::F64(_) => dispatch_as::<f64, C>(arrays, variant, call),
        NamedArray::Int(_) => bail!("`{name}` must be float32 or float64"),
    }
}

fn dispatch_as<F: Float, C: Call>(
    arrays: &Arrays,
    variant: &Variant,
    call: &C,
) -> anyhow::Result<C::Out> {
    let float = |name: &str| arrays.get(name).map(|a| a.to_f64().mapv(F::from_f64));
    let int = |name: &str| {
        arrays
            .get(name)
            .and_then(NamedArray::to_i64)
            .with_context(|| format!("the .npz holds no integer `{name}`"))
    };
    let tokens = float(token_array(variant)).expect("checked by dispatch");
    let durations = float("duration_logits");
    let targets = int("targets")?;
    let frames = int("logit_lengths")?.into_dimensionality::<Ix1>()?;
    let lengths = int("target_lengths")?.into_dimensionality::<Ix1>()?;
    let targets = match targets.ndim() {
        1 => Targets::Packed(targets.view().into_dimensionality::<Ix1>()?),
        _ => Targets::Padded(targets.view().into_dimensionality::<Ix2>()?),
    };
    Ok(if tokens.ndim() == 2 {
        call.call(&VariantInput {
            logits: tokens.view().into_dimensionality::<Ix2>()?,
            duration_logits: durations
                .as_ref()
                .map(|d| d.view().into_dimensionality::<Ix2>())
                .transpose()?,
            targets,
            logit_lengths: frames.view(),
            target_lengths: lengths.view(),
        })?
    } else {
        call.call(&VariantInput {
            logits: tokens.view().into_dimensionality::<Ix4>()?,
            duration_logits: durations
                .as_ref()
                .map(|d| d.view().into_dimensionality::<Ix4>())
                .transpose()?,
            targets,
            logit_lengths: frames.view(),
            target_lengths: lengths.view(),
        })?
    })
}

/// `rnnt check` on a folder in the variants' format (a manifest whose entries name their
/// `variant`): each case through the variant's fast path in its stored dtype against its truth.
/// `None` when the folder's manifest names no variant (the standard golden format).
pub fn check_dir(
    dir: &std::path::Path,
    threads: usize,
) -> anyhow::Result<Option<std::process::ExitCode>> {
    if !dir.join("manifest.json").exists() {
        return Ok(None);
    }
    let manifest = rnnt_cases::variants::read_variant_manifest(dir)?;
    if manifest.values().all(|e| e.variant.is_none()) {
        return Ok(None);
    }
    let mut failed = 0;
    for (name, entry) in &manifest {
        let arrays = rnnt_cases::variants::read_arrays(&dir.join(format!("{name}.npz")))?;
        let kind = entry.variant.as_deref().unwrap_or("regular");
        let (variant, lambda) = variant_of(kind, &arrays, &entry.options, (None, None))?;
        let options = Options {
            blank: entry.entry.blank,
            reduction: rnnt::Reduction::Sum,
            fastemit_lambda: lambda,
            threads,
            ..Options::default()
        };
        let out = run(&arrays, &variant, &options)?;
        let tolerance = entry.entry.tolerance;
        let truth = |key: &str| arrays.get(key).map(NamedArray::to_f64);
        let losses = truth("losses").context("a case needs `losses`")?;
        let loss_ok = out
            .losses
            .iter()
            .zip(&losses)
            .all(|(&l, &t)| tolerance.loss_ok(l, t));
        let grad_key = if token_array(&variant) == "token_logits" {
            "grad_token_logits"
        } else {
            "grad_logits"
        };
        let diff = |ours: &ArrayD<f64>, key: &str| -> f64 {
            truth(key).map_or(0.0, |t| {
                ours.iter()
                    .zip(&t)
                    .map(|(&a, &b)| {
                        if a == b {
                            0.0
                        } else if a.is_nan() {
                            f64::INFINITY
                        } else {
                            (a - b).abs()
                        }
                    })
                    .fold(0.0, f64::max)
            })
        };
        let grad_error = diff(&out.grad, grad_key).max(
            out.duration_grad
                .as_ref()
                .map_or(0.0, |d| diff(d, "grad_duration_logits")),
        );
        let ok = loss_ok && grad_error <= tolerance.grad_atol;
        failed += usize::from(!ok);
        println!(
            "{:<6} {name:<24} {kind:<14} grad error {grad_error:.2e}",
            if ok { "ok" } else { "FAIL" }
        );
    }
    println!("{} cases, {failed} failed", manifest.len());
    Ok(Some(if failed == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    }))
}
