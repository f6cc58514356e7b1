"""Drop-in replacements for other RNN-T losses: change one import, keep the call.

=============================  ==============================================  ===================
module                         replaces                                        input, reduction
=============================  ==============================================  ===================
``rnnt.compat.torchaudio``     ``torchaudio.functional.rnnt_loss``,            logits, mean over B
                               ``torchaudio.transforms.RNNTLoss``
``rnnt.compat.warprnnt``       ``warprnnt_pytorch.rnnt_loss`` / ``RNNTLoss``    logits, sum / B
``rnnt.compat.awni``           awni's ``transducer.TransducerLoss``             log-probs, batch sum
=============================  ==============================================  ===================

``rnnt.compat.optimized_transducer`` replaces optimized_transducer's ``transducer_loss`` /
``TransducerLoss`` (packed (sum of T_b*(U_b+1), V) logits or log-probs, mean over B).

Each submodule documents the original API's semantics next to ours. They import torch.
"""
