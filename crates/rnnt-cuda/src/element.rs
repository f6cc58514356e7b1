//! The element types the kernels read and write, and how each is named to the kernel source.

use cudarc::driver::DeviceRepr;
use rnnt::Float;

/// A score / gradient element type the CUDA kernels accept.
pub trait DeviceElement: Float + DeviceRepr {
    /// The value of `RNNT_ELEM` that selects this type in `kernels/common.cu`.
    const KERNEL_ELEM: u32;
}

impl DeviceElement for f32 {
    const KERNEL_ELEM: u32 = 0;
}

impl DeviceElement for f64 {
    const KERNEL_ELEM: u32 = 1;
}

impl DeviceElement for half::f16 {
    const KERNEL_ELEM: u32 = 2;
}

impl DeviceElement for half::bf16 {
    const KERNEL_ELEM: u32 = 3;
}

#[cfg(test)]
mod tests {
    use super::DeviceElement;

    #[test]
    fn each_type_has_its_own_kernel_selector_of_its_size() {
        let selectors = [
            (f32::KERNEL_ELEM, std::mem::size_of::<f32>()),
            (f64::KERNEL_ELEM, std::mem::size_of::<f64>()),
            (half::f16::KERNEL_ELEM, std::mem::size_of::<half::f16>()),
            (half::bf16::KERNEL_ELEM, std::mem::size_of::<half::bf16>()),
        ];
        assert_eq!(selectors, [(0, 4), (1, 8), (2, 2), (3, 2)]);
    }
}
