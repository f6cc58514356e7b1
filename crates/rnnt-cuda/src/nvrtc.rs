//! NVRTC, the CUDA runtime compiler, loaded at run time from whichever CUDA 12 or 13 install is
//! present.
//!
//! cudarc's own NVRTC loader only knows the library names of the CUDA version it was built for
//! and panics when none loads; torch's wheels ship `libnvrtc.so.13` (or `.so.12`) inside
//! `site-packages/nvidia/…/lib`. So the library is opened here: first the path in
//! [`LIBRARY_ENV`] if set, then the names in [`LIBRARY_NAMES`] (a library already loaded in the
//! process, e.g. by torch, is found by its name). Only six functions are used, all stable since
//! CUDA 11.1. NVRTC needs no GPU: compiling works, and is tested, on any machine that has it.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::OnceLock;

use rnnt::{Error, Result};

/// Environment variable naming the NVRTC library file to load, overriding the search.
pub const LIBRARY_ENV: &str = "RNNT_NVRTC_LIBRARY";

/// Library names tried in order when [`LIBRARY_ENV`] is not set.
pub const LIBRARY_NAMES: [&str; 4] = [
    "libnvrtc.so.13",
    "libnvrtc.so.12",
    "libnvrtc.so",
    "nvrtc64_120_0.dll",
];

type Program = *mut c_void;
type Status = c_int;

/// The NVRTC entry points this crate calls.
struct Nvrtc {
    create: unsafe extern "C" fn(
        *mut Program,
        *const c_char,
        *const c_char,
        c_int,
        *const *const c_char,
        *const *const c_char,
    ) -> Status,
    compile: unsafe extern "C" fn(Program, c_int, *const *const c_char) -> Status,
    log_size: unsafe extern "C" fn(Program, *mut usize) -> Status,
    log: unsafe extern "C" fn(Program, *mut c_char) -> Status,
    cubin_size: unsafe extern "C" fn(Program, *mut usize) -> Status,
    cubin: unsafe extern "C" fn(Program, *mut c_char) -> Status,
    destroy: unsafe extern "C" fn(*mut Program) -> Status,
    version: unsafe extern "C" fn(*mut c_int, *mut c_int) -> Status,
    /// Keeps the library loaded for the life of the process.
    _library: libloading::Library,
    /// Keeps the preloaded builtins (if any) loaded too.
    _builtins: Vec<libloading::Library>,
}

/// The loaded library, or why none could be loaded.
fn library() -> Result<&'static Nvrtc> {
    static NVRTC: OnceLock<std::result::Result<Nvrtc, String>> = OnceLock::new();
    NVRTC
        .get_or_init(load)
        .as_ref()
        .map_err(|why| Error::Unavailable(why.clone()))
}

fn load() -> std::result::Result<Nvrtc, String> {
    let candidates: Vec<String> = match std::env::var(LIBRARY_ENV) {
        Ok(path) => vec![path],
        Err(_) => LIBRARY_NAMES.iter().map(|s| s.to_string()).collect(),
    };
    let mut tried = Vec::new();
    for name in &candidates {
        let builtins = preload_builtins(name);
        // SAFETY: loading NVRTC runs no initialisation code with preconditions.
        match unsafe { libloading::Library::new(name) } {
            Ok(library) => {
                return symbols(library, builtins)
                    .map_err(|e| format!("{name} is not a usable NVRTC: {e}"))
            }
            Err(e) => tried.push(format!("{name} ({e})")),
        }
    }
    Err(format!(
        "no NVRTC found: could not load the CUDA runtime compiler; tried {}. Install NVRTC \
         (CUDA toolkit, or the nvidia-cuda-nvrtc wheel that torch uses) and put its folder on \
         LD_LIBRARY_PATH, or set {LIBRARY_ENV} to the library file",
        tried.join(", ")
    ))
}

/// NVRTC opens its builtins library (`libnvrtc-builtins.so.X.Y`) by name when it compiles; when
/// NVRTC is given as a path outside the loader's search path, the builtins beside it are loaded
/// first so that NVRTC finds them already in the process.
fn preload_builtins(nvrtc_path: &str) -> Vec<libloading::Library> {
    let Some(dir) = std::path::Path::new(nvrtc_path).parent() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path.file_name()?.to_str()?;
            if !name.starts_with("libnvrtc-builtins.so") {
                return None;
            }
            // SAFETY: the builtins library has no initialisation code with preconditions.
            unsafe { libloading::Library::new(&path) }.ok()
        })
        .collect()
}

fn symbols(
    library: libloading::Library,
    builtins: Vec<libloading::Library>,
) -> std::result::Result<Nvrtc, libloading::Error> {
    // SAFETY: each symbol is declared with its signature from nvrtc.h (CUDA 11.1 to 13.x).
    unsafe {
        Ok(Nvrtc {
            create: *library.get(b"nvrtcCreateProgram\0")?,
            compile: *library.get(b"nvrtcCompileProgram\0")?,
            log_size: *library.get(b"nvrtcGetProgramLogSize\0")?,
            log: *library.get(b"nvrtcGetProgramLog\0")?,
            cubin_size: *library.get(b"nvrtcGetCUBINSize\0")?,
            cubin: *library.get(b"nvrtcGetCUBIN\0")?,
            destroy: *library.get(b"nvrtcDestroyProgram\0")?,
            version: *library.get(b"nvrtcVersion\0")?,
            _library: library,
            _builtins: builtins,
        })
    }
}

/// Checks that NVRTC can be loaded.
///
/// # Errors
/// [`Error::Unavailable`] saying which libraries were tried and how to provide one.
pub fn require_library() -> Result<()> {
    library().map(|_| ())
}

/// The (major, minor) version of the loaded NVRTC.
///
/// # Errors
/// [`Error::Unavailable`] when NVRTC cannot be loaded.
pub fn version() -> Result<(i32, i32)> {
    let nvrtc = library()?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: both pointers are valid for one write.
    let status = unsafe { (nvrtc.version)(&mut major, &mut minor) };
    check(status, "nvrtcVersion")?;
    Ok((major, minor))
}

/// Compiles `source` (named `name` in messages) with `options` to a CUBIN.
///
/// # Errors
/// [`Error::Unavailable`] when NVRTC cannot be loaded, or holding NVRTC's log when the program
/// does not compile.
pub fn compile_cubin(source: &str, name: &str, options: &[String]) -> Result<Vec<u8>> {
    let nvrtc = library()?;
    let text =
        |s: &str| CString::new(s).map_err(|_| Error::Value(format!("{s:?} holds a NUL byte")));
    let (source_c, name_c) = (text(source)?, text(name)?);
    let options_c = options
        .iter()
        .map(|o| text(o))
        .collect::<Result<Vec<_>>>()?;
    let option_ptrs: Vec<*const c_char> = options_c.iter().map(|o| o.as_ptr()).collect();
    let mut program: Program = std::ptr::null_mut();
    // SAFETY: the strings are NUL-terminated and outlive the call; no headers are passed.
    let status = unsafe {
        (nvrtc.create)(
            &mut program,
            source_c.as_ptr(),
            name_c.as_ptr(),
            0,
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    check(status, "nvrtcCreateProgram")?;
    let guard = ProgramGuard { nvrtc, program };
    // SAFETY: `program` is live; the option pointers are valid NUL-terminated strings.
    let status = unsafe {
        (nvrtc.compile)(
            guard.program,
            option_ptrs.len() as c_int,
            option_ptrs.as_ptr(),
        )
    };
    if status != 0 {
        return Err(Error::Unavailable(format!(
            "NVRTC could not compile {name} (status {status}, options {options:?}):\n{}",
            guard.log()
        )));
    }
    let mut size = 0usize;
    // SAFETY: `program` is compiled; `size` is valid for one write.
    check(
        unsafe { (nvrtc.cubin_size)(guard.program, &mut size) },
        "nvrtcGetCUBINSize",
    )?;
    let mut cubin = vec![0u8; size];
    // SAFETY: `cubin` has the size NVRTC reported.
    check(
        unsafe { (nvrtc.cubin)(guard.program, cubin.as_mut_ptr().cast()) },
        "nvrtcGetCUBIN",
    )?;
    Ok(cubin)
}

/// Destroys a program when dropped.
struct ProgramGuard {
    nvrtc: &'static Nvrtc,
    program: Program,
}

impl ProgramGuard {
    /// The compilation log (warnings and errors).
    fn log(&self) -> String {
        let mut size = 0usize;
        // SAFETY: `program` is live; `size` is valid for one write.
        if unsafe { (self.nvrtc.log_size)(self.program, &mut size) } != 0 || size == 0 {
            return String::new();
        }
        let mut log = vec![0u8; size];
        // SAFETY: `log` has the size NVRTC reported, NUL included.
        if unsafe { (self.nvrtc.log)(self.program, log.as_mut_ptr().cast()) } != 0 {
            return String::new();
        }
        CStr::from_bytes_until_nul(&log)
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

impl Drop for ProgramGuard {
    fn drop(&mut self) {
        // SAFETY: `program` was created by nvrtcCreateProgram and is destroyed once.
        unsafe { (self.nvrtc.destroy)(&mut self.program) };
    }
}

fn check(status: Status, call: &str) -> Result<()> {
    if status == 0 {
        Ok(())
    } else {
        Err(Error::Unavailable(format!(
            "NVRTC call {call} failed with status {status}"
        )))
    }
}
