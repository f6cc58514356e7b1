//! The C structures of DLPack (<https://dmlc.github.io/dlpack/latest/c_api.html>), the protocol
//! through which NumPy arrays and torch tensors lend their memory to this module.
//!
//! Declared here rather than taken from a crate: the module needs five `#[repr(C)]` structs and
//! a few constants, laid out exactly as `dlpack.h` (version 1.x) lays them out; what they hold is
//! checked in [`crate::array`] before anything is read through them.

use std::ffi::{c_void, CStr};
use std::fmt;

/// The DLPack major version this module reads (`DLPACK_MAJOR_VERSION`); a versioned tensor of
/// another major version may lay out its fields differently and is refused.
pub const MAJOR_VERSION: u32 = 1;

/// Name of a capsule holding a [`DLManagedTensorVersioned`] not yet consumed.
pub const VERSIONED: &CStr = c"dltensor_versioned";
/// Name a consumer gives a [`VERSIONED`] capsule it has taken ownership of.
pub const USED_VERSIONED: &CStr = c"used_dltensor_versioned";
/// Name of a capsule holding a [`DLManagedTensor`] (the unversioned protocol) not yet consumed.
pub const LEGACY: &CStr = c"dltensor";
/// Name a consumer gives a [`LEGACY`] capsule it has taken ownership of.
pub const USED_LEGACY: &CStr = c"used_dltensor";

/// `DLPACK_FLAG_BITMASK_READ_ONLY`: the producer forbids writes to the tensor's memory.
pub const FLAG_READ_ONLY: u64 = 1 << 0;

/// `kDLCPU`, ordinary host memory.
pub const DEVICE_CPU: i32 = 1;

/// `kDLInt`: signed integers.
pub const CODE_INT: u8 = 0;
/// `kDLUInt`: unsigned integers.
pub const CODE_UINT: u8 = 1;
/// `kDLFloat`: IEEE floating point.
pub const CODE_FLOAT: u8 = 2;
/// `kDLBfloat`: bfloat16.
pub const CODE_BFLOAT: u8 = 4;
/// `kDLComplex`: complex numbers (two IEEE floats).
pub const CODE_COMPLEX: u8 = 5;
/// `kDLBool`: booleans.
pub const CODE_BOOL: u8 = 6;

/// `DLPackVersion`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct DLPackVersion {
    /// Incremented on ABI-breaking changes.
    pub major: u32,
    /// Incremented on compatible additions.
    pub minor: u32,
}

/// `DLDevice`: where the memory lives.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DLDevice {
    /// `DLDeviceType`, an `enum` of C (an `int`): [`DEVICE_CPU`] or another kind.
    pub device_type: i32,
    /// The device's index among those of its kind.
    pub device_id: i32,
}

impl fmt::Display for DLDevice {
    /// The device as `dlpack.h` names its kind (`kDLCUDA`), with its index.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.device_type {
            1 => "CPU",
            2 => "CUDA",
            3 => "CUDAHost",
            4 => "OpenCL",
            7 => "Vulkan",
            8 => "Metal",
            9 => "VPI",
            10 => "ROCM",
            11 => "ROCMHost",
            12 => "ExtDev",
            13 => "CUDAManaged",
            14 => "OneAPI",
            15 => "WebGPU",
            16 => "Hexagon",
            17 => "MAIA",
            18 => "Trn",
            other => return write!(f, "DLPack device type {other}:{}", self.device_id),
        };
        write!(f, "kDL{kind}:{}", self.device_id)
    }
}

/// `DLDataType`: an element type as a kind code, a width and a vector lane count.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DLDataType {
    /// `DLDataTypeCode`: [`CODE_FLOAT`], [`CODE_INT`], ...
    pub code: u8,
    /// Bits per lane.
    pub bits: u8,
    /// Lanes per element: 1 for the scalar types this module reads.
    pub lanes: u16,
}

impl DLDataType {
    /// A scalar type of kind `code` and `bits` bits.
    pub const fn scalar(code: u8, bits: u8) -> Self {
        DLDataType {
            code,
            bits,
            lanes: 1,
        }
    }
}

impl fmt::Display for DLDataType {
    /// The name NumPy and torch give the type (`float32`, `bfloat16`, `bool`), so that messages
    /// read as they would for the array itself.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.code {
            CODE_INT => "int",
            CODE_UINT => "uint",
            CODE_FLOAT => "float",
            CODE_BFLOAT => "bfloat",
            CODE_COMPLEX => "complex",
            CODE_BOOL if self.bits == 8 => "bool",
            other => return write!(f, "DLPack type code {other} ({} bits)", self.bits),
        };
        if kind == "bool" {
            f.write_str(kind)?;
        } else {
            write!(f, "{kind}{}", self.bits)?;
        }
        if self.lanes != 1 {
            write!(f, "x{}", self.lanes)?;
        }
        Ok(())
    }
}

/// `DLTensor`: the memory and layout of one array, borrowed from its manager.
#[repr(C)]
#[derive(Debug)]
pub struct DLTensor {
    /// The allocation's start (the first element is `byte_offset` bytes further).
    pub data: *mut c_void,
    /// Where `data` lives.
    pub device: DLDevice,
    /// The number of axes; `shape` and `strides` hold that many entries.
    pub ndim: i32,
    /// The element type.
    pub dtype: DLDataType,
    /// The extent of each axis.
    pub shape: *mut i64,
    /// The step of each axis in elements, or null for compact row-major order.
    pub strides: *mut i64,
    /// Bytes from `data` to the first element.
    pub byte_offset: u64,
}

/// `DLManagedTensor`, what an unversioned `"dltensor"` capsule holds.
#[repr(C)]
#[derive(Debug)]
pub struct DLManagedTensor {
    /// The tensor.
    pub dl_tensor: DLTensor,
    /// The producer's context (the object that owns the memory).
    pub manager_ctx: *mut c_void,
    /// Releases the tensor and its memory; called once by the consumer, may be null.
    pub deleter: Option<unsafe extern "C" fn(*mut DLManagedTensor)>,
}

/// `DLManagedTensorVersioned`, what a `"dltensor_versioned"` capsule holds.
#[repr(C)]
#[derive(Debug)]
pub struct DLManagedTensorVersioned {
    /// The layout version of the rest of the struct.
    pub version: DLPackVersion,
    /// The producer's context (the object that owns the memory).
    pub manager_ctx: *mut c_void,
    /// Releases the tensor and its memory; called once by the consumer, may be null.
    pub deleter: Option<unsafe extern "C" fn(*mut DLManagedTensorVersioned)>,
    /// `FLAG_*` bits.
    pub flags: u64,
    /// The tensor.
    pub dl_tensor: DLTensor,
}
