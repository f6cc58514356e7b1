"""The fused joiner and loss (:func:`rnnt.joint_rnnt_loss`, :class:`rnnt.JointRNNTLoss`,
:func:`rnnt.joint_loss_and_grad`) against the unfused computation (the same joiner in torch, then
:func:`rnnt.rnnt_loss`), ``gradcheck``, the golden cases of tests/golden-joint, torch.compile and
bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import rnnt  # noqa: E402

GOLDEN_JOINT = Path(__file__).resolve().parents[3] / "tests" / "golden-joint"

ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "identity": lambda z: z}


def unfused(
    f: torch.Tensor,
    g: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor | None,
    targets: torch.Tensor,
    logit_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    activation: str,
    **options: Any,
) -> torch.Tensor:
    """The joiner materialised in torch, then ``rnnt.rnnt_loss``."""
    x = ACTIVATIONS[activation](f[:, :, None, :] + g[:, None, :, :]) @ w.T
    if b is not None:
        x = x + b
    return rnnt.rnnt_loss(x, targets, logit_lengths, target_lengths, **options)


def random_problem(seed: int, dtype: torch.dtype) -> dict[str, Any]:
    """A random ragged batch (T_b = 1 and U_b = 0 among them) with random options."""
    rng = np.random.default_rng(seed)
    batch, frames = int(rng.integers(1, 4)), int(rng.integers(1, 7))
    labels = int(rng.integers(0, 5))
    hidden, vocab = int(rng.integers(1, 9)), int(rng.integers(2, 9))
    scale = float(rng.uniform(0.2, 2.0))
    blank = int(rng.choice([0, -1]))
    blank_id = blank % vocab
    choices = [k for k in range(vocab) if k != blank_id]

    def tensor(*shape: int) -> torch.Tensor:
        values = rng.normal(0.0, scale, shape)
        return torch.tensor(values, dtype=dtype, requires_grad=True)

    logit_lengths = rng.integers(1, frames + 1, batch)
    target_lengths = rng.integers(0, labels + 1, batch)
    if seed % 4 == 0:  # the longest lengths at the padded sizes, as torchaudio needs them
        logit_lengths[0], target_lengths[0] = frames, labels
    return {
        "f": tensor(batch, frames, hidden),
        "g": tensor(batch, labels + 1, hidden),
        "w": tensor(vocab, hidden),
        "b": tensor(vocab) if rng.random() < 0.5 else None,
        "targets": torch.tensor(rng.choice(choices, (batch, labels)), dtype=torch.int32),
        "logit_lengths": torch.tensor(logit_lengths, dtype=torch.int32),
        "target_lengths": torch.tensor(target_lengths, dtype=torch.int32),
        "activation": str(rng.choice(list(ACTIVATIONS))),
        "options": {
            "blank": blank,
            "reduction": str(rng.choice(["mean", "sum", "none"])),
            "clamp": float(rng.choice([-1.0, rng.uniform(0.01, 0.5)])),
            "fastemit_lambda": float(rng.choice([0.0, rng.uniform(0.0, 1.0)])),
        },
    }


def inputs_of(problem: dict[str, Any]) -> list[torch.Tensor]:
    return [t for t in (problem["f"], problem["g"], problem["w"], problem["b"]) if t is not None]


def assert_close(ours: torch.Tensor, truth: torch.Tensor, rtol: float, what: str) -> None:
    """max |ours - truth| <= rtol * max |truth| (exact where the truth is all zeros)."""
    ours, truth = ours.detach(), truth.detach()
    scale = float(truth.abs().max()) if truth.numel() else 0.0
    error = float((ours - truth).abs().max()) if truth.numel() else 0.0
    assert error <= rtol * scale + 1e-300, f"{what}: error {error:.3e} for scale {scale:.3e}"


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-9), (torch.float32, 1e-4)])
@pytest.mark.parametrize("seed", range(40))
def test_matches_the_unfused_loss(seed: int, dtype: torch.dtype, rtol: float) -> None:
    problem = random_problem(seed, dtype)
    p = problem
    fused = rnnt.joint_rnnt_loss(
        p["f"], p["g"], p["w"], p["b"], p["targets"], p["logit_lengths"], p["target_lengths"],
        activation=p["activation"], **p["options"],
    )  # fmt: skip
    truth = unfused(
        p["f"], p["g"], p["w"], p["b"], p["targets"], p["logit_lengths"], p["target_lengths"],
        p["activation"], **p["options"],
    )  # fmt: skip
    assert fused.dtype == dtype and fused.shape == truth.shape
    assert_close(fused, truth, rtol, "loss")
    upstream = torch.linspace(0.5, 1.5, fused.numel(), dtype=dtype).reshape(fused.shape)
    ours = torch.autograd.grad((fused * upstream).sum(), inputs_of(p))
    theirs = torch.autograd.grad((truth * upstream).sum(), inputs_of(p))
    for name, a, b in zip(("encoder_out", "predictor_out", "weight", "bias"), ours, theirs):
        assert_close(a, b, rtol, name)


def test_packed_targets_and_int64_match_padded() -> None:
    p = random_problem(3, torch.float64)
    packed = torch.cat([row[:n] for row, n in zip(p["targets"], p["target_lengths"])]).long()
    args = (p["f"], p["g"], p["w"], p["b"])
    padded = rnnt.joint_rnnt_loss(
        *args, p["targets"], p["logit_lengths"], p["target_lengths"], activation=p["activation"]
    )
    flat = rnnt.joint_rnnt_loss(
        *args, packed, p["logit_lengths"].long(), p["target_lengths"].long(),
        activation=p["activation"],
    )  # fmt: skip
    assert float(flat) == float(padded)


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("activation", ["tanh", "relu", "identity"])
def test_gradcheck(activation: str, reduction: str) -> None:
    generator = torch.Generator().manual_seed(7)

    def rand(*shape: int) -> torch.Tensor:
        values = torch.randn(*shape, generator=generator, dtype=torch.float64)
        return values.requires_grad_(True)

    f, g, w, b = rand(2, 4, 3), rand(2, 3, 3), rand(5, 3), rand(5)
    targets = torch.tensor([[1, 2], [3, 0]], dtype=torch.int32)
    logit_lengths = torch.tensor([4, 2], dtype=torch.int32)
    target_lengths = torch.tensor([2, 1], dtype=torch.int32)

    def loss(*params: torch.Tensor) -> torch.Tensor:
        return rnnt.joint_rnnt_loss(
            *params, targets, logit_lengths, target_lengths,
            activation=activation, blank=-1, reduction=reduction,
        )  # fmt: skip

    assert torch.autograd.gradcheck(loss, (f, g, w, b), eps=1e-6, atol=1e-7)


def golden_names() -> list[str]:
    with open(GOLDEN_JOINT / "manifest.json") as f:
        return sorted(json.load(f))


@pytest.mark.parametrize("name", golden_names())
def test_golden(name: str) -> None:
    with open(GOLDEN_JOINT / "manifest.json") as f:
        entry = json.load(f)[name]
    with np.load(GOLDEN_JOINT / f"{name}.npz") as data:
        arrays = {key: data[key] for key in data.files}
    tolerance = entry["tolerance"]
    has_bias = "bias" in arrays
    for dtype in {arrays["encoder_out"].dtype, np.dtype(np.float64)}:
        exact = dtype == np.float64
        params = [
            torch.tensor(arrays[key].astype(dtype), requires_grad=True)
            for key in ("encoder_out", "predictor_out", "weight", "bias")
            if key in arrays
        ]
        loss = rnnt.joint_rnnt_loss(
            params[0], params[1], params[2], params[3] if has_bias else None,
            torch.from_numpy(arrays["targets"]), torch.from_numpy(arrays["logit_lengths"]),
            torch.from_numpy(arrays["target_lengths"]),
            activation=entry["activation"], blank=int(arrays["blank"]), reduction="none",
        )  # fmt: skip
        loss_atol = 1e-9 if exact else tolerance["loss_atol"]
        loss_rtol = 1e-9 if exact else tolerance["loss_rtol"]
        np.testing.assert_allclose(
            loss.detach().double().numpy(), arrays["losses"], rtol=loss_rtol, atol=loss_atol
        )
        grads = torch.autograd.grad(loss.sum(), params)
        keys = ["grad_encoder_out", "grad_predictor_out", "grad_weight", "grad_bias"]
        for key, grad in zip(keys, grads):
            atol = 1e-9 if exact else tolerance["grad_atol"]
            np.testing.assert_allclose(grad.double().numpy(), arrays[key], rtol=0, atol=atol)
        # The NumPy front end gives the same numbers.
        np_loss, *np_grads = rnnt.joint_loss_and_grad(
            *(p.detach().numpy() for p in params[:3]),
            params[3].detach().numpy() if has_bias else None,
            arrays["targets"], arrays["logit_lengths"], arrays["target_lengths"],
            activation=entry["activation"], blank=int(arrays["blank"]), reduction="none",
        )  # fmt: skip
        np.testing.assert_array_equal(np_loss, loss.detach().numpy())
        for ours, grad in zip(np_grads, grads):
            assert ours is not None
            np.testing.assert_array_equal(ours, grad.numpy())
        if not has_bias:
            assert np_grads[3] is None


def test_module_owns_only_the_output_layer_and_matches_linear() -> None:
    torch.manual_seed(0)
    criterion = rnnt.JointRNNTLoss(6, 9, activation="relu", blank=0, dtype=torch.float64)
    assert [name for name, _ in criterion.named_parameters()] == ["weight", "bias"]
    assert criterion.weight.shape == (9, 6) and criterion.bias is not None
    linear = torch.nn.Linear(6, 9, dtype=torch.float64)
    with torch.no_grad():
        linear.weight.copy_(criterion.weight)
        linear.bias.copy_(criterion.bias)
    f = torch.randn(2, 5, 6, dtype=torch.float64)
    g = torch.randn(2, 3, 6, dtype=torch.float64)
    targets = torch.tensor([[1, 2], [4, 5]])
    lengths = torch.tensor([5, 4]), torch.tensor([2, 1])
    loss = criterion(f, g, targets, *lengths)
    x = linear(torch.relu(f[:, :, None] + g[:, None]))
    truth = rnnt.rnnt_loss(x, targets, *lengths, blank=0)
    loss.backward()
    truth.backward()
    assert_close(loss, truth, 1e-12, "loss")
    assert criterion.weight.grad is not None and linear.weight.grad is not None
    assert_close(criterion.weight.grad, linear.weight.grad, 1e-9, "weight")
    no_bias = rnnt.JointRNNTLoss(6, 9, bias=False)
    assert [name for name, _ in no_bias.named_parameters()] == ["weight"]


def test_torch_compile_full_graph() -> None:
    p = random_problem(8, torch.float32)

    def loss(f: torch.Tensor, g: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return rnnt.joint_rnnt_loss(
            f, g, w, None, p["targets"], p["logit_lengths"], p["target_lengths"],
            blank=p["options"]["blank"],
        )  # fmt: skip

    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
    eager = loss(p["f"], p["g"], p["w"])
    traced = compiled(p["f"], p["g"], p["w"])
    assert torch.equal(eager, traced)
    a = torch.autograd.grad(eager, (p["f"], p["g"], p["w"]))
    b = torch.autograd.grad(traced, (p["f"], p["g"], p["w"]))
    for x, y in zip(a, b):
        assert torch.equal(x, y)


def test_no_grad_computes_the_loss_only() -> None:
    p = random_problem(5, torch.float64)
    args = (p["f"], p["g"], p["w"], p["b"], p["targets"], p["logit_lengths"], p["target_lengths"])
    blank = p["options"]["blank"]
    with torch.no_grad():
        loss = rnnt.joint_rnnt_loss(*args, blank=blank)
    assert not loss.requires_grad
    assert float(loss) == float(rnnt.joint_rnnt_loss(*args, blank=blank).detach())


def valid_args() -> dict[str, Any]:
    return {
        "encoder_out": torch.zeros(2, 4, 3),
        "predictor_out": torch.zeros(2, 3, 3),
        "weight": torch.zeros(5, 3),
        "bias": torch.zeros(5),
        "targets": torch.ones(2, 2, dtype=torch.int32),
        "logit_lengths": torch.tensor([4, 3], dtype=torch.int32),
        "target_lengths": torch.tensor([2, 1], dtype=torch.int32),
    }


@pytest.mark.parametrize(
    "change,error,pattern",
    [
        ({"predictor_out": torch.zeros(3, 3, 3)}, ValueError, "predictor_out has B = 3"),
        ({"predictor_out": torch.zeros(2, 3, 4)}, ValueError, "predictor_out has H = 4"),
        ({"weight": torch.zeros(5, 4)}, ValueError, "weight has shape"),
        ({"bias": torch.zeros(6)}, ValueError, "bias has shape"),
        ({"bias": torch.zeros(5, 1)}, ValueError, "bias has 2 dimensions"),
        ({"encoder_out": torch.zeros(2, 4)}, ValueError, "encoder_out has 2 dimensions"),
        ({"logit_lengths": torch.tensor([5, 3], dtype=torch.int32)}, ValueError,
         r"logit_lengths\[0\] = 5 exceeds T = encoder_out.shape\[1\]"),
        ({"target_lengths": torch.tensor([3, 1], dtype=torch.int32)}, ValueError,
         r"target_lengths\[0\] = 3 exceeds U = predictor_out.shape\[1\] - 1"),
        ({"logit_lengths": torch.tensor([4], dtype=torch.int32)}, ValueError, "logit_lengths"),
        ({"weight": torch.zeros(5, 3, dtype=torch.float64)}, TypeError, "weight has dtype"),
        ({"encoder_out": torch.zeros(2, 4, 3, dtype=torch.float16),
          "predictor_out": torch.zeros(2, 3, 3, dtype=torch.float16)}, TypeError, "encoder_out"),
        ({"targets": torch.ones(2, 2)}, TypeError, "targets"),
        ({"weight": torch.zeros(5, 3, device="meta")}, ValueError, "weight is on meta"),
        ({"encoder_out": np.zeros((2, 4, 3), np.float32)}, TypeError, "encoder_out must be"),
        ({"targets": torch.full((2, 2), 7, dtype=torch.int32)}, ValueError, "targets"),
        ({"encoder_out": torch.full((2, 4, 3), float("nan"))}, ValueError,
         r"encoder_out\[0\]\[0\]\[0\] = NaN"),
    ],
)  # fmt: skip
def test_bad_input_names_the_argument(
    change: dict[str, Any], error: type[Exception], pattern: str
) -> None:
    args = valid_args() | change
    with pytest.raises(error, match=pattern):
        rnnt.joint_rnnt_loss(*args.values())


def test_unknown_activation_and_reduction() -> None:
    with pytest.raises(ValueError, match="activation = 'sigmoid'"):
        rnnt.joint_rnnt_loss(*valid_args().values(), activation="sigmoid")
    with pytest.raises(ValueError, match="reduction = 'avg'"):
        rnnt.joint_rnnt_loss(*valid_args().values(), reduction="avg")
    with pytest.raises(ValueError, match="activation"):
        rnnt.JointRNNTLoss(3, 5, activation="gelu")
    numpy_args = [None if v is None else v.numpy() for v in valid_args().values()]
    with pytest.raises(ValueError, match='activation = "gelu"'):
        rnnt.joint_loss_and_grad(*numpy_args, activation="gelu")
