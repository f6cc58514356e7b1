//! The CUDA C source of the kernels, as compiled by NVRTC.
//!
//! One program per element type: `#define RNNT_ELEM n` followed by the shared definitions and the
//! three passes. The entry points are `extern "C"` so that their names are not mangled.

/// Shared types, element conversions and warp row helpers.
const COMMON: &str = include_str!("kernels/common.cu");
/// The front pass (row log-sum-exp, per-node scores).
const FRONT: &str = include_str!("kernels/front.cu");
/// The α/β lattice and arc occupancies.
const LATTICE: &str = include_str!("kernels/lattice.cu");
/// The gradient pass.
const GRAD: &str = include_str!("kernels/grad.cu");

/// Entry point of the front pass.
pub const FRONT_ENTRY: &str = "rnnt_front";
/// Entry point of the lattice pass.
pub const LATTICE_ENTRY: &str = "rnnt_lattice";
/// Entry point of the gradient pass.
pub const GRAD_ENTRY: &str = "rnnt_grad";

/// The complete program for the element type selected by `kernel_elem`
/// ([`DeviceElement::KERNEL_ELEM`](crate::DeviceElement::KERNEL_ELEM)).
pub fn program_source(kernel_elem: u32) -> String {
    format!("#define RNNT_ELEM {kernel_elem}\n{COMMON}\n{FRONT}\n{LATTICE}\n{GRAD}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_defines_each_entry_point_once_unmangled() {
        let source = program_source(0);
        assert!(source.starts_with("#define RNNT_ELEM 0\n"));
        for entry in [FRONT_ENTRY, LATTICE_ENTRY, GRAD_ENTRY] {
            let declaration = format!("extern \"C\" __global__ void {entry}(");
            assert_eq!(
                source.matches(&declaration).count(),
                1,
                "{entry} must be declared once as an extern \"C\" kernel"
            );
        }
    }

    #[test]
    fn program_needs_no_header_and_indexes_rows_in_64_bits() {
        let source = program_source(3);
        assert!(
            !source.contains("#include"),
            "NVRTC is given no include path"
        );
        assert!(source.contains("typedef long long i64;"));
        // Row and element offsets are computed from 64-bit row indices.
        assert!(source.contains("for (i64 row ="));
        assert!(source.contains("scores + row * vocab"));
        assert!(source.contains("grad + row * vocab"));
        // The lattice accumulates in float64.
        assert!(source.contains("double* alpha"));
    }
}
