"""``rnnt.compat.awni.TransducerLoss`` against awni/transducer's own tests and its defaults.

The expected values are those of awni's ``test.py`` (revision 004ff6f, 2018, the one whose
``functions/transducer.py`` has ``TransducerLoss(size_average=True, blank_label=None)``): logits
of shape (B, T, U+1, V), ``log_softmax`` in torch, the per-item costs summed, the gradient taken
with respect to the log-probs, blank 0.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import rnnt  # noqa: E402
from rnnt.compat.awni import TransducerLoss  # noqa: E402

SMALL_ACTS = [
    [
        [[0.1, 0.6, 0.1, 0.1, 0.1], [0.1, 0.1, 0.6, 0.1, 0.1], [0.1, 0.1, 0.2, 0.8, 0.1]],
        [[0.1, 0.6, 0.1, 0.1, 0.1], [0.1, 0.1, 0.2, 0.1, 0.1], [0.7, 0.1, 0.2, 0.1, 0.1]],
    ]
]
SMALL_LABELS = [[1, 2]]
SMALL_COSTS = [4.495666]
SMALL_GRADS = [
    [
        [
            [-0.308198071906, -0.6918019280939998, 0.0, 0.0, 0.0],
            [-0.308198071906, 0.0, -0.3836038561880001, 0.0, 0.0],
            [-0.3836038561880001, 0.0, 0.0, 0.0, 0.0],
        ],
        [
            [0.0, -0.308198071906, 0.0, 0.0, 0.0],
            [0.0, 0.0, -0.6163961438119995, 0.0, 0.0],
            [-0.9999999999999991, 0.0, 0.0, 0.0, 0.0],
        ],
    ]
]

BIG_ACTS = [
    [
        [
            [0.06535690384862791, 0.7875301411923206, 0.08159176605666074],
            [0.5297155426466327, 0.7506749639230854, 0.7541348379087998],
            [0.6097641124736383, 0.8681404965673826, 0.6225318186056529],
        ],
        [
            [0.6685222872103057, 0.8580392805336061, 0.16453892311765583],
            [0.989779515236694, 0.944298460961015, 0.6031678586829663],
            [0.9467833543605416, 0.666202507295747, 0.28688179752461884],
        ],
        [
            [0.09418426230195986, 0.3666735970751962, 0.736168049462793],
            [0.1666804425271342, 0.7141542198635192, 0.3993997272216727],
            [0.5359823524146038, 0.29182076440286386, 0.6126422611507932],
        ],
        [
            [0.3242405528768486, 0.8007644367291621, 0.5241057606558068],
            [0.779194617063042, 0.18331417220174862, 0.113745182072432],
            [0.24022162381327106, 0.3394695622533106, 0.1341595066017014],
        ],
    ],
    [
        [
            [0.5055615569388828, 0.051597282072282646, 0.6402903936686337],
            [0.43073311517251, 0.8294731834714112, 0.1774668847323424],
            [0.3207001991262245, 0.04288308912457006, 0.30280282975568984],
        ],
        [
            [0.6751777088333762, 0.569537369330242, 0.5584738347504452],
            [0.08313242153985256, 0.06016544344162322, 0.10795752845152584],
            [0.7486153608562472, 0.943918041459349, 0.4863558118797222],
        ],
        [
            [0.4181986264486809, 0.6524078485043804, 0.024242983423721887],
            [0.13458171554507403, 0.3663418070512402, 0.2958297395361563],
            [0.9236695822497084, 0.6899291482654177, 0.7418981733448822],
        ],
        [
            [0.25000547599982104, 0.6034295486281007, 0.9872887878887768],
            [0.5926057265215715, 0.8846724004467684, 0.5434495396894328],
            [0.6607698886038497, 0.3771277082495921, 0.3580209022231813],
        ],
    ],
]
BIG_LABELS = [[1, 2], [1, 1]]
BIG_COSTS = [4.2806528590890736, 3.9384369822503591]
BIG_GRADS = [
    [
        [
            [-0.4322264564338117, -0.5677735435661883, 0.0],
            [-0.36565009313836844, 0.0, -0.20212345042782007],
            [-0.20212345042782007, 0.0, 0.0],
        ],
        [
            [-0.16521672442463506, -0.2670097320091765, 0.0],
            [-0.3943653886107811, 0.0, -0.2382944365367636],
            [-0.44041788696458367, 0.0, 0.0],
        ],
        [
            [-0.052129794015740985, -0.11308693040889405, 0.0],
            [-0.18313786985332664, 0.0, -0.3243144491663483],
            [-0.7647323361309323, 0.0, 0.0],
        ],
        [
            [0.0, -0.052129794015740985, 0.0],
            [0.0, 0.0, -0.23526766386906767],
            [-1.0, 0.0, 0.0],
        ],
    ],
    [
        [
            [-0.7161424128232795, -0.2838575871767207, 0.0],
            [-0.18382932237365335, -0.10002826480306751, 0.0],
            [-0.10002826480306751, 0.0, 0.0],
        ],
        [
            [-0.41121794618117213, -0.3049244666421072, 0.0],
            [-0.3295759402552584, -0.15917784876050195, 0.0],
            [-0.2592061135635692, 0.0, 0.0],
        ],
        [
            [-0.11607642141651396, -0.29514152476465827, 0.0],
            [-0.2865333615432337, -0.3381841034766833, 0.0],
            [-0.5973902170402529, 0.0, 0.0],
        ],
        [
            [0.0, -0.11607642141651396, 0.0],
            [0.0, -0.4026097829597475, 0.0],
            [-1.0, 0.0, 0.0],
        ],
    ],
]

CASES = {
    "small_test": (SMALL_ACTS, SMALL_LABELS, SMALL_COSTS, SMALL_GRADS),
    "big_test": (BIG_ACTS, BIG_LABELS, BIG_COSTS, BIG_GRADS),
}


def awni_call(
    acts: list[object], labels: list[list[int]], size_average: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """awni's ``apply_transducer``: float32 logits, every item full length, packed int32 labels,
    ``log_softmax`` in torch; returns the loss and its gradient with respect to the log-probs."""
    logits = torch.tensor(np.array(acts), dtype=torch.float32)
    log_probs = torch.log_softmax(logits, dim=3).detach().requires_grad_(True)
    lengths = torch.full((logits.shape[0],), logits.shape[1], dtype=torch.int32)
    label_lengths = torch.tensor([len(row) for row in labels], dtype=torch.int32)
    flat = torch.tensor([label for row in labels for label in row], dtype=torch.int32)
    loss = TransducerLoss(size_average=size_average, blank_label=0)(
        log_probs, flat, lengths, label_lengths
    )
    loss.backward()
    assert log_probs.grad is not None
    return loss.detach(), log_probs.grad


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("size_average", [False, True])
def test_awni_test_values(name: str, size_average: bool) -> None:
    acts, labels, costs, grads = CASES[name]
    loss, grad = awni_call(acts, labels, size_average)
    scale = len(costs) if size_average else 1
    assert loss.shape == (1,) and loss.dtype == torch.float32
    np.testing.assert_allclose(loss.numpy(), [sum(costs) / scale], rtol=1e-6)
    np.testing.assert_allclose(grad.numpy(), np.array(grads) / scale, rtol=1e-5, atol=1e-7)


def test_default_blank_is_the_last_symbol_and_mean_over_the_batch() -> None:
    generator = torch.Generator().manual_seed(3)
    log_probs = torch.log_softmax(torch.randn(3, 5, 4, 6, generator=generator), dim=-1)
    labels = torch.randint(0, 5, (3, 3), generator=generator, dtype=torch.int32)
    lengths = torch.tensor([5, 3, 4], dtype=torch.int32)
    label_lengths = torch.tensor([3, 1, 2], dtype=torch.int32)
    flat = torch.cat([row[: int(n)] for row, n in zip(labels, label_lengths)])
    per_item = rnnt.rnnt_loss(
        log_probs, labels, lengths, label_lengths, 5, reduction="none", fused_log_softmax=False
    )
    loss = TransducerLoss()(log_probs, flat, lengths, label_lengths)
    torch.testing.assert_close(loss, per_item.mean().reshape(1))
    positional = TransducerLoss(False, 5)(log_probs, flat, lengths, label_lengths)
    torch.testing.assert_close(positional, per_item.sum().reshape(1))
