"""Drop-in replacements for other RNN-T losses: change one import, keep the call.

=============================  ==============================================  ===================
module                         replaces                                        input, reduction
=============================  ==============================================  ===================
``rnnt.compat.torchaudio``     ``torchaudio.functional.rnnt_loss``,            logits, mean over B
                               ``torchaudio.transforms.RNNTLoss``
``rnnt.compat.warprnnt``       ``warprnnt_pytorch.rnnt_loss`` / ``RNNTLoss``    logits, sum / B
``rnnt.compat.awni``           awni's ``transducer.TransducerLoss``             log-probs, sum / B
``rnnt.compat.transformers``   ``transformers.loss.loss_rnnt.rnnt_loss``        logits, NeMo's five
                               (HuggingFace transformers, Parakeet)             (sum / ΣU_b)
``rnnt.compat.transformers``   ``transformers.loss.loss_tdt.tdt_loss``          two heads, NeMo's
                               (Parakeet-TDT)                                   five (mean U_b)
=============================  ==============================================  ===================

``rnnt.compat.optimized_transducer`` replaces optimized_transducer's ``transducer_loss`` /
``TransducerLoss`` (packed (sum of T_b*(U_b+1), V) logits or log-probs, mean over B;
``one_sym_per_frame=True`` included).

Each submodule documents the original API's semantics next to ours. They import torch.
"""
