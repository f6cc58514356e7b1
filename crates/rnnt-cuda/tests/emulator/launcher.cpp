// Host entry points of the emulated kernels (appended after cuda_shim.h and the kernel source).

extern "C" void emu_front(unsigned grid, unsigned block, const void* scores, i64 batch, i64 frames,
                          i64 positions, i64 vocab, int blank, int fused, const int* item_frames,
                          const int* item_labels, const i64* label_offsets, const int* labels,
                          double* blank_lp, double* emit_lp, double* node_lse, u64* bad_row) {
    emu_launch(grid, block, [&] {
        rnnt_front((const elem_t*)scores, batch, frames, positions, vocab, blank, fused,
                   item_frames, item_labels, label_offsets, labels, blank_lp, emit_lp, node_lse,
                   bad_row);
    });
}

extern "C" void emu_lattice(unsigned grid, unsigned block, i64 frames, i64 positions,
                            const int* item_frames, const int* item_labels,
                            const double* blank_lp, const double* emit_lp, double* alpha,
                            double* beta, double* blank_arc, double* emit_arc, double* log_p) {
    emu_launch(grid, block, [&] {
        rnnt_lattice(frames, positions, item_frames, item_labels, blank_lp, emit_lp, alpha, beta,
                     blank_arc, emit_arc, log_p);
    });
}

extern "C" void emu_grad(unsigned grid, unsigned block, const void* scores, void* grad, i64 batch,
                         i64 frames, i64 positions, i64 vocab, int blank, int fused,
                         double emit_scale, double clamp, const int* item_frames,
                         const int* item_labels, const i64* label_offsets, const int* labels,
                         const double* node_lse, const double* blank_arc, const double* emit_arc,
                         const double* log_p, const double* item_weights) {
    emu_launch(grid, block, [&] {
        rnnt_grad((const elem_t*)scores, (elem_t*)grad, batch, frames, positions, vocab, blank,
                  fused, emit_scale, clamp, item_frames, item_labels, label_offsets, labels,
                  node_lse, blank_arc, emit_arc, log_p, item_weights);
    });
}
